"""model/destination: the text of a destination parsed once, into an address or a namespace."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from veth_wrap.errors import UsageError
from veth_wrap.model.destination import Destination, parse_address, parse_destination


@pytest.mark.parametrize("text,version,expected", [
    ("10.0.0.2", None, Destination(address=ip_address("10.0.0.2"))),
    ("fd00::0002", 6, Destination(address=ip_address("fd00::2"))),
    ("lab-a", None, Destination(netns="lab-a")),
    ("lab-a", 6, Destination(netns="lab-a", version=6)),
])
def test_parsed(text, version, expected):
    assert parse_destination(text, version) == expected


@pytest.mark.parametrize("text,version,said", [
    ("10.0.0.2", 6, "10.0.0.2 is not an IPv6 address"),
    ("-f", None, "'-f'"),
    ("a/b", None, "a/b"),
])
def test_refused(text, version, said):
    with pytest.raises(UsageError, match=said) as caught:
        parse_destination(text, version)
    assert caught.value.exit_code == 2


def test_address_typed_or_text():
    assert parse_address("fd00::0002") == parse_address(ip_address("fd00::2"))
    with pytest.raises(UsageError, match="'example.org' is not an IP address"):
        parse_address("example.org")
