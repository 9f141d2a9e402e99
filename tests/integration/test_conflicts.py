"""Idempotence, conflicts refused before any change, and decoys that survive every command."""

from __future__ import annotations

import pytest
from conftest import ip
from faultip import decorate, differences, snapshot, wiring
from inprocess import vethwrap

pytestmark = pytest.mark.integration


def one_line(result, code: int, *needles: str) -> None:
    """The exit status, and one stderr line holding every needle, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]


def test_second_create_is_a_no_op_and_destroy_of_absent_things_succeeds(netns):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--no-verify").returncode == 0
    before = [wiring(a), wiring(b)]
    again = vethwrap("create", a, b)
    assert again.returncode == 0 and "already built as asked; nothing changed" in again.stderr
    assert [wiring(a), wiring(b)] == before
    assert vethwrap("destroy", a, b).returncode == 0
    for args in ([a, b], ["--lab", a], [netns.name()]):
        result = vethwrap("destroy", *args)
        assert result.returncode == 0 and "Traceback" not in result.stderr


def test_conflicts_are_refused_before_any_change(netns):
    a, b, c = netns.name(), netns.name(), netns.name()
    assert vethwrap("create", a, b, "--no-verify").returncode == 0
    foreign = netns.make()
    ip("-n", foreign, "link", "add", f"vw-{c}", "type", "veth", "peer", "name", "other")
    used = netns.make()
    decorate(used, "10.0.0.1/24")
    before = snapshot([foreign, used]), wiring(a), wiring(b)
    cases = [
        ((a, c), ("namespace", a, "wired differently")),
        ((c, a, "--lab", c), ("namespace", a, f"belongs to lab {a}")),
        ((foreign, c), (f"interface vw-{c} already exists in {foreign}",)),
        ((used, c), ("address 10.0.0.1/24 is already on decoy0", used)),
    ]
    for args, needles in cases:
        one_line(vethwrap("create", *args), 2, *needles)
        assert not differences(before[0], snapshot([foreign, used])), args
        assert (wiring(a), wiring(b)) == before[1:]
    assert vethwrap("destroy", a, b).returncode == 0


def test_decoys_survive_create_and_every_destroy(netns):
    plain = netns.make()
    ip("-n", plain, "link", "set", "lo", "up")  # so that create has nothing to change in it
    decorate(plain)
    ip("-n", plain, "link", "add", "vw-x", "type", "veth", "peer", "name", "vb-x")
    ip("-n", plain, "link", "add", "vbr-x", "type", "bridge")
    ip("-n", plain, "link", "set", "lo", "alias", "vethwrap-looking but not a mark")
    lookalike = "vethwrap-" + netns.name()
    ip("netns", "add", lookalike)
    ip("-n", lookalike, "link", "set", "lo", "alias", "vethwrap/not/a-mark")
    members = [plain, netns.name(), netns.name()]
    before = snapshot([plain, lookalike])
    for destroy in (["--lab", plain], members):
        assert vethwrap("create", *members, "--no-verify").returncode == 0
        listed = vethwrap("destroy", "--all", "--dry-run")
        assert listed.returncode == 0
        assert lookalike not in listed.stdout and f"netns del {plain}" not in listed.stdout
        assert vethwrap("destroy", *destroy).returncode == 0
        assert not differences(before, snapshot([plain, lookalike]))
    assert vethwrap("destroy", plain, lookalike).returncode == 0
    assert not differences(before, snapshot([plain, lookalike]))
