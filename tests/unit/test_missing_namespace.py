"""One refusal for a namespace the kernel does not hold, whichever command meets it."""

from __future__ import annotations

import pytest
from fakes import RecordingRunner

from veth_wrap import api
from veth_wrap.errors import ExitStatus, NoSuchNamespace
from veth_wrap.explain.nets import Nets
from veth_wrap.faults.partition import resolve
from veth_wrap.kernel import inventory
from veth_wrap.model.destination import parse_destination
from veth_wrap.run.runner import Result

LISTED = '[{"name":"ns0"}]'


def listing() -> RecordingRunner:
    """A kernel holding only ns0."""
    return RecordingRunner(lambda argv, stdin: Result(argv, LISTED, "", 0))


@pytest.mark.parametrize("refuse", [
    lambda: Nets.open("ns9", listing()),
    lambda: api.exec_argv("ns9", ["true"], listing()),
    lambda: inventory.destination("ns9", parse_destination("10.0.0.1"), listing()),
    lambda: inventory.destination("ns0", parse_destination("ns9"), listing()),
    lambda: resolve("ns9", None, ["ns0"]),
], ids=["diagnose", "exec", "ping-source", "ping-destination", "partition"])
def test_every_place_says_the_same(refuse):
    with pytest.raises(NoSuchNamespace) as caught:
        refuse()
    assert caught.value.line() == "namespace 'ns9' does not exist (see 'vethwrap show')"
    assert caught.value.exit_code == ExitStatus.REFUSED


def test_a_lab_member_by_short_name_names_both():
    with pytest.raises(NoSuchNamespace, match=r"namespace 'b' \(nor lab-b\) does not exist"):
        resolve("b", "lab", ["lab-a"])
