"""Rollback at every step: call K of create fails (or line L of a batch); the kernel is kept."""

from __future__ import annotations

import pytest
from conftest import ip
from faultip import FaultyIp, decorate, differences, snapshot

from veth_wrap import api
from veth_wrap.errors import VethwrapError
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind

pytestmark = pytest.mark.integration
FAULTS = {"points": 0}  # fault points injected in this run, for the closing note

SHAPES = {
    # kind, number of members, which members exist before create (decoys inside them)
    "pair": (Kind.PAIR, 2, (0,)),
    "bridge": (Kind.BRIDGE, 5, (0, 3)),
    "chain": (Kind.CHAIN, 5, (1,)),
}


def _members(netns, count: int, existing: tuple) -> tuple[list[str], list[str]]:
    members, made = [], []
    for i in range(count):
        if i in existing:
            members.append(netns.make())
            decorate(members[-1])
            made.append(members[-1])
        else:
            members.append(netns.name())
    return members, made


def _fails_cleanly(lab, fake: FaultyIp, runner, before, made) -> str:
    with pytest.raises(VethwrapError) as caught:
        api.create(lab, runner, check=False)
    error = caught.value
    assert error.exit_code == 1
    assert "\n" not in error.line() and "command failed: ip" in error.line()
    assert not getattr(error, "undo_failures", [])
    assert not differences(before, snapshot(made)), error.line()
    FAULTS["points"] += 1
    return error.line()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_rollback_at_every_call_and_batch_line(shape, netns, tmp_path, monkeypatch):
    kind, count, existing = SHAPES[shape]
    members, made = _members(netns, count, existing)
    lab = shapes.build(members, kind=kind)
    fake = FaultyIp(tmp_path / "ip")
    runner = fake.runner(monkeypatch)
    before = snapshot(made)
    fake.reset(record=True)
    api.create(lab, runner, check=False)
    calls = fake.count
    batches = {k: fake.batch_lines(k) for k in range(1, calls + 1) if fake.batch_lines(k) > 1}
    api.destroy(members, runner=runner)
    for ns in made:  # destroy leaves lo up (and forwarding on) in a namespace it did not make
        ip("-n", ns, "link", "set", "lo", "down")
        ip("-n", ns, "addr", "flush", "dev", "lo")
        ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    assert snapshot(made) == before
    for k in range(1, calls + 1):
        fake.reset(at=k, mode="fail")
        _fails_cleanly(lab, fake, runner, before, made)
    for k, lines in batches.items():
        for line in sorted({1, (lines + 1) // 2, lines}):
            fake.reset(at=k, mode="line", line=line)
            message = _fails_cleanly(lab, fake, runner, before, made)
            assert "File exists" in message
    assert calls >= 3 and batches
    print(f"\n{shape}: {FAULTS['points']} fault points so far")


def test_cli_names_the_failing_command(netns, tmp_path, cli, unchanged):
    left, right = netns.name(), netns.name()
    fake = FaultyIp(tmp_path / "ip")
    fake.reset(record=True)
    assert cli("create", left, right, "--no-verify", env=fake.env()).returncode == 0
    calls = fake.count
    assert cli("destroy", left, right).returncode == 0
    fake.reset(at=calls, mode="fail")
    result = cli("create", left, right, env=fake.env())
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "command failed: ip" in lines[0] and "File exists" in lines[0]
    assert "Traceback" not in result.stderr
