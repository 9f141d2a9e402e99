"""Bad input is refused before any change: exit 2, one stderr line naming the value."""

from __future__ import annotations

import nobody
import pytest
from conftest import kernel_snapshot
from inprocess import vethwrap

pytestmark = pytest.mark.integration


def refused(proc, *needles: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr that contains every needle."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0]


CASES = {
    # id: (create arguments built from two fresh names a, b; words the error must contain)
    "slash": (lambda a, b: [f"{a}/x", b], lambda a, b: [f"'{a}/x'", "not allowed"]),
    "empty": (lambda a, b: ["", b], lambda a, b: ["empty namespace name"]),
    "300 chars": (lambda a, b: [a + "x" * (300 - len(a)), b],
                  lambda a, b: [a, "300 characters", "at most 64"]),
    "twice": (lambda a, b: [a, a], lambda a, b: [f"'{a}'", "named twice"]),
    "one": (lambda a, b: [a], lambda a, b: ["at least two namespaces"]),
    "three as pair": (lambda a, b: [a, b, a + "c", "-t", "pair"], lambda a, b: ["not 3"]),
    "/33": (lambda a, b: [a, b, "--subnet", "10.0.0.0/33"], lambda a, b: ["'10.0.0.0/33'"]),
    "nonsense": (lambda a, b: [a, b, "--subnet", "nonsense"], lambda a, b: ["'nonsense'"]),
    "no room": (lambda a, b: [a, b, "--subnet", "10.0.0.0/31"],
                lambda a, b: ["10.0.0.0/31", "too small"]),
    "no room bridge": (lambda a, b: [a, b, a + "c", "--subnet", "10.9.0.0/30"],
                       lambda a, b: ["10.9.0.0/30 holds 2 hosts", "needs 3"]),
    "reserved": (lambda a, b: [f"vethwrap-{a}", b], lambda a, b: ["reserved"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_create_refuses(case, unchanged, netns):
    a, b = netns.name(), netns.name()
    args, needles = CASES[case]
    for dry in ([], ["--dry-run"]):
        refused(vethwrap("create", *args(a, b), *dry), *needles(a, b))
    assert not {a, b} & set(kernel_snapshot()[0])


def test_other_commands_refuse_bad_names(unchanged, netns):
    a = netns.name()
    refused(vethwrap("destroy", f"{a}/x"), f"'{a}/x'")
    refused(vethwrap("destroy"), "--all")
    refused(vethwrap("destroy", a, "--all"), "--all")
    refused(vethwrap("ping", f"{a}/x", "10.0.0.1"), f"'{a}/x'")
    refused(vethwrap("ping", a, "10.0.0.1"), f"'{a}'", "does not exist")
    refused(vethwrap("show", "a b"), "'a b'")


def test_unprivileged_create_is_refused_and_points_to_dry_run(unchanged, netns):
    a, b = netns.name(), netns.name()
    refused(nobody.run("create", a, b), "needs root (or CAP_NET_ADMIN with CAP_SYS_ADMIN)",
            "--dry-run")
    refused(nobody.run("destroy", a, b), "needs root")
    assert not {a, b} & set(kernel_snapshot()[0])


@pytest.mark.parametrize("args, needle", [
    (["create", "x", "y", "--bogus"], "No such option: --bogus"),
    (["create"], "name the namespaces to join, or give --lan groups"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["ping", "x", "10.0.0.1", "--count", "0"], "--count"),
    (["create", "x", "y", "--topology", "ring"], "ring"),
])
def test_usage_errors_are_one_line(args, needle, unchanged):
    refused(vethwrap(*args), needle, "--help")


@pytest.mark.parametrize("capeff,allowed", [("0000000000201000", True),    # NET_ADMIN + SYS_ADMIN
                                            ("0000000000001000", False),   # NET_ADMIN alone
                                            ("0000000000000000", False)])
def test_capabilities_stand_in_for_root(tmp_path, capeff, allowed):
    from veth_wrap.kernel import caps

    status = tmp_path / "status"
    status.write_text(f"Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t{capeff}\n")
    held = caps.effective_caps(str(status)) & caps.NEEDED_CAPS == caps.NEEDED_CAPS
    assert held is allowed
