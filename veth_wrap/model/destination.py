"""What `diagnose` and `ping` are asked to reach: an IP address, or a namespace vethwrap wired.

The text is parsed once, where it comes in (the CLI, or the API for library callers); below
that only the typed value travels.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional, Union

from veth_wrap.errors import UsageError
from veth_wrap.model.names import check_netns

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class Destination:
    """An address as given, or a namespace whose address (of one IP version) the kernel holds."""

    address: Optional[Address] = None
    netns: Optional[str] = None
    version: Optional[int] = None  # for a namespace: take its address of this IP version


def parse_destination(text: str, version: Optional[int] = None) -> Destination:
    """An address (of the IP version asked for, if any), else a well-formed namespace name."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        check_netns(text)
        return Destination(netns=text, version=version)
    if version and address.version != version:
        raise UsageError(f"{text} is not an IPv{version} address",
                         "give an IPv6 address, or leave out -6")
    return Destination(address=address)


def parse_address(text: Union[str, Address]) -> Address:
    """An IP address, or refuse the text naming it."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"destination {str(text)!r} is not an IP address",
                         "give an IPv4 or IPv6 address such as 10.0.0.2") from None
