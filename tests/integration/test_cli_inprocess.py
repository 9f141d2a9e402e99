"""The in-process CLI (tests/inprocess.py) answers as `python -m veth_wrap` does, and one run
leaves nothing behind that changes the next: the ground the converted integration tests stand on."""

from __future__ import annotations

import os
import re
import signal

import pytest
from inprocess import vethwrap

pytestmark = pytest.mark.integration

LAB = "name: {name}\nnamespaces: [a, b]\nlinks:\n  - between: [a, b]\n"


def same(cli, *args: str, input: str | None = None):
    """Run args both ways; assert exit code, stdout and stderr are equal (round-trip times
    aside); the result."""
    inside, process = vethwrap(*args, input=input), cli(*args, input=input)
    assert (inside.exit_code, timeless(inside.stdout), inside.stderr) == (
        process.returncode, timeless(process.stdout), process.stderr), args
    return inside


def timeless(text: str) -> str:
    return re.sub(r"rtt min/avg/max \S+", "rtt", text)


@pytest.mark.parametrize("args", [
    ("--version",), ("--help",), ("create", "--help"), ("nosuchcmd",), ("creat",), ("create",),
    ("create", "a", "--topology", "custom"), ("show", "--lab", "bad name"),
    ("create", "--dry-run", "xta", "xtb", "xtc", "--ipv6"), ("ping", "a"),
])
def test_answers_as_the_process_does(cli, args):
    same(cli, *args)


def test_a_lab_on_stdin_and_a_real_lab_read_alike(unchanged, netns, cli):
    a, b = netns.name(), netns.name()
    same(cli, "up", "-f", "-", "--dry-run", input=LAB.format(name="xtin"))
    assert vethwrap("create", a, b).exit_code == 0
    try:
        for args in (("show", "--lab", a), ("show", "--lab", a, "--json"), ("ps", a),
                     ("ping", a, b, "--count", "1"), ("create", a, b), ("destroy", a, "nope!")):
            same(cli, *args)
    finally:
        assert vethwrap("destroy", a, b).exit_code == 0


def test_nothing_carries_over_to_the_next_run(unchanged, netns, tmp_path):
    a, b = netns.name(), netns.name()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    environment, fds = dict(os.environ), sorted(os.listdir("/proc/self/fd"))
    debugged = vethwrap("--debug", "show", "--lab", "bad name")
    assert debugged.exit_code == 2 and "Traceback" in debugged.stderr
    assert "Traceback" not in vethwrap("show", "--lab", "bad name").stderr  # --debug is gone
    assert vethwrap("-q", "create", a, b).exit_code == 0
    quiet = vethwrap("-q", "destroy", a, b)
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert vethwrap("create", a, b).exit_code == 0
    assert "removed 2 namespace(s)" in vethwrap("destroy", a, b).stderr  # -q is gone
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"name: {a}\nnamespaces: [{a}, {b}]\nlinks:\n  - between: [{a}, {b}]\n")
    first = vethwrap("up", "-f", str(lab), "--dry-run")
    lab.write_text(f"name: {a}\nnamespaces: [{a}]\n")
    second = vethwrap("up", "-f", str(lab), "--dry-run")
    assert first.stdout != second.stdout  # the edited file was read again
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    assert dict(os.environ) == environment
    assert sorted(os.listdir("/proc/self/fd")) == fds  # the lock and every pipe closed


def test_exec_is_refused_in_process():
    with pytest.raises(AssertionError, match="replaces the process"):
        vethwrap("-q", "exec", "xtnone", "--", "true")
