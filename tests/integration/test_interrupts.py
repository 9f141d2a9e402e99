"""Interrupts and crashes during create: SIGINT/SIGTERM roll back; after kill -9, destroy cleans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ip
from faultip import FaultyIp, differences, snapshot

pytestmark = pytest.mark.integration
CRASHES = {"points": 0}


def _start(args: list[str], fake: FaultyIp) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "veth_wrap", *args], env=fake.env(NO_COLOR="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc: subprocess.Popen) -> None:
    """Wait until the wrapper says it reached the slow call (bounded, never a pass criterion)."""
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the slowed call was never reached"
        time.sleep(0.02)


def _calls(fake: FaultyIp, members: list[str], args: list[str], cli) -> int:
    """How many ip calls a clean create makes; the lab is removed again."""
    fake.reset(record=True)
    assert cli("create", *members, *args, "--no-verify", env=fake.env()).returncode == 0
    calls = fake.count
    assert cli("destroy", *members).returncode == 0
    return calls


def _leftovers(names: list[str]) -> list[str]:
    spaces = ip("netns", "list").stdout.split()
    return [ns for ns in names + [f"vethwrap-{n}" for n in names] if ns in spaces]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_create_rolls_back(signum, netns, tmp_path, cli):
    members = [netns.name() for _ in range(3)]
    before = snapshot([])
    fake = FaultyIp(tmp_path / "ip")
    calls = _calls(fake, members, [], cli)
    for at in (calls - 1, calls):  # a member step with namespaces already made, and the last
        fake.reset(at=at, mode="sleep", seconds=1)
        proc = _start(["create", *members, "--no-verify"], fake)
        _wait_for(fake.dir / "reached", proc)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + signum, err
        assert "interrupted" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert _leftovers(members) == []
    assert not differences(before, snapshot([]))


def _crash(fake: FaultyIp, args: list[str]) -> None:
    """kill -9 vethwrap and the ip it was running, as an OOM kill of the whole job would."""
    proc = _start(args, fake)
    _wait_for(fake.dir / "reached", proc)
    proc.kill()
    proc.wait()
    # the slowed ip's group: the batch vethwrap started, and any step it forked
    os.killpg(os.getpgid(fake.pid()), signal.SIGKILL)
    CRASHES["points"] += 1


@pytest.mark.parametrize("shape", ["pair", "bridge", "chain"])
def test_destroy_cleans_up_after_kill_9(shape, netns, tmp_path, cli):
    members = [netns.name() for _ in range(2 if shape == "pair" else 4)]
    args = [*members, "--topology", shape, "--no-verify"]
    before = snapshot([])
    fake = FaultyIp(tmp_path / "ip")
    calls = _calls(fake, members, ["--topology", shape], cli)
    # A namespace is unmarked from its `netns add` until the first line of the step inside
    # it (run in the same root batch, next): such a step is killed after that line.
    inner = {int(line.split()[0]) for line in fake.calls() if "/dev/stdin" in line}
    points = [(at, "midbatch", 1) if at in inner else (at, "sleep", 0)
              for at in range(2, calls + 1)]
    points += [(calls, "midbatch", 2), (2, "midbatch", 2), (2, "midbatch", 4)]
    for number, (at, mode, line) in enumerate(points):
        fake.reset(at=at, mode=mode, seconds=60, line=line)
        _crash(fake, ["create", *args])
        how = ["destroy", *members] if number % 2 else ["destroy", "--lab", members[0]]
        if (at, mode, line) == (2, "midbatch", 4):  # what is made so far is marked: found
            listed = cli("destroy", "--all", "--dry-run")
            present = _leftovers(members)
            assert listed.returncode == 0 and present
            assert all(f"netns del {ns}\n" in listed.stdout for ns in present), listed.stdout
        result = cli(*how)
        assert result.returncode == 0, result.stderr
        assert _leftovers(members) == [], (at, mode, line, how)
    assert not differences(before, snapshot([]))
    print(f"\n{shape}: {CRASHES['points']} crash points so far")
