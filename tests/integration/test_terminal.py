"""On a terminal: a progress bar for many namespaces and colour, unless NO_COLOR is set."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration
ESC = b"\x1b["


def on_terminal(args: list[str], env: dict) -> tuple[int, bytes]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; its exit status and output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "veth_wrap", *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen


def terminal_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", COLUMNS="100", **extra)
    return env


def test_many_namespaces_show_a_bar_and_colour_on_a_terminal(netns, unchanged):
    members = [netns.name() for _ in range(12)]
    code, seen = on_terminal(["create", *members], terminal_env())
    assert code == 0, seen.decode(errors="replace")
    assert b"creating" in seen and ESC in seen  # the bar's label, drawn with escapes
    code, seen = on_terminal(["destroy", "--lab", members[0]], terminal_env())
    assert code == 0 and b"destroying" in seen, seen.decode(errors="replace")


def test_no_color_keeps_escapes_off_a_terminal(netns, unchanged):
    a, b = netns.name(), netns.name()
    code, seen = on_terminal(["create", a, b], terminal_env())
    assert code == 0 and ESC in seen, seen.decode(errors="replace")
    code, seen = on_terminal(["show", a, b], terminal_env(NO_COLOR="1"))
    assert code == 0 and a.encode() in seen and ESC not in seen, seen
    code, seen = on_terminal(["destroy", a, b], terminal_env(NO_COLOR="1"))
    assert code == 0 and ESC not in seen
