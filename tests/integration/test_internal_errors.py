"""A bug of vethwrap's own (an exception nobody planned for) still reaches the user as one
line, exit 1, and a plan it was running is rolled back: never a traceback, never a mess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from faultip import differences, snapshot

pytestmark = pytest.mark.integration

# The CLI run in a subprocess after an injected fault: the walker's second run of steps (the
# name files, after the root batch built both namespaces) raises a TypeError.
BUGGY = textwrap.dedent("""
    import sys
    from veth_wrap.run import processes

    real, seen = processes.run_wave, []

    def buggy(*args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")
        return real(*args, **kwargs)

    processes.run_wave = buggy
    from veth_wrap.cli.app import run

    sys.argv = ["vethwrap", *sys.argv[1:]]
    run()
""")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BUGGY, *args], capture_output=True, text=True,
                          env=dict(os.environ, NO_COLOR="1"), timeout=120)


def test_a_bug_mid_create_is_one_line_and_rolled_back(netns):
    members = [netns.name(), netns.name()]
    before = snapshot([])
    result = _run("create", *members)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: internal error: TypeError: unsupported operand")
    assert "--debug" in lines[0]
    assert not differences(before, snapshot([]))  # both namespaces were rolled back


def test_debug_shows_the_traceback_of_a_bug(netns):
    members = [netns.name(), netns.name()]
    result = _run("--debug", "create", *members)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "TypeError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: internal error")
