"""Every `ip` call is a fault point: call K of create (verification included), of destroy and of
`up` of an edited file fails (or line L of a batch), and the kernel is kept as it was."""

from __future__ import annotations

import pytest
from conftest import ip
from faultip import FaultyIp, decorate, differences, snapshot

from veth_wrap import api
from veth_wrap.errors import VethwrapError
from veth_wrap.model import labfile, shapes
from veth_wrap.model.topology import Kind

pytestmark = pytest.mark.integration
FAULTS = {"points": 0}  # fault points injected in this run, for the closing note
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

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
        api.create(lab, runner)  # verification included: its reads are fault points too
    error = caught.value
    assert error.exit_code == 1
    assert "\n" not in error.line() and "command failed: ip" in error.line()
    assert not getattr(error, "undo_failures", [])
    assert not differences(before, snapshot(made)), error.line()
    FAULTS["points"] += 1
    return error.line()


def _lab(shape: str, netns) -> tuple:
    """The lab of a shape (or of examples/chain.yaml), and the namespaces made beforehand."""
    if shape == "file":
        prefix = netns.name("f")
        lab = labfile.load(ROOT / "examples" / "chain.yaml", prefix=prefix)
        netns.names.extend(lab.members)
        ip("netns", "add", lab.members[1])  # the router exists before, with decoys inside
        decorate(lab.members[1])
        return lab, [lab.members[1]]
    kind, count, existing = SHAPES[shape]
    members, made = _members(netns, count, existing)
    return shapes.build(members, kind=kind), made


def _restore(made: list[str]) -> None:
    """Destroy leaves lo up (and forwarding on) in a namespace it did not make: undo that."""
    for ns in made:
        ip("-n", ns, "link", "set", "lo", "down")
        ip("-n", ns, "addr", "flush", "dev", "lo")
        ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")


@pytest.mark.parametrize("shape", sorted(SHAPES) + ["file"])
def test_rollback_at_every_call_and_batch_line(shape, netns, tmp_path, monkeypatch):
    lab, made = _lab(shape, netns)
    fake = FaultyIp(tmp_path / "ip")
    runner = fake.runner(monkeypatch)
    before = snapshot(made)
    fake.reset(record=True)
    api.create(lab, runner)
    calls = fake.count
    batches = {k: fake.batch_lines(k) for k in range(1, calls + 1) if fake.batch_lines(k) > 1}
    api.destroy(lab.members, runner=runner)
    fake.reset()
    api.create(lab, runner, check=False)
    applying = fake.count  # calls from here on are the verification's reads
    api.destroy(lab.members, runner=runner)
    _restore(made)
    assert snapshot(made) == before
    start = FAULTS["points"]
    for k in range(1, calls + 1):
        fake.reset(at=k, mode="fail")
        message = _fails_cleanly(lab, fake, runner, before, made)
        if k > applying:
            assert "verification could not run" in message and "rolled back" in message
    for k, lines in batches.items():
        for line in sorted({1, (lines + 1) // 2, lines}):
            fake.reset(at=k, mode="line", line=line)
            message = _fails_cleanly(lab, fake, runner, before, made)
            assert "File exists" in message
    # verification's reads ride in the build's last batch (its last lines are injected above)
    assert calls >= applying >= 3 and batches
    print(f"\n{shape}: {calls} calls ({calls - applying} verifying), "
          f"{FAULTS['points'] - start} fault points")


def test_destroy_fails_at_every_call_and_a_second_destroy_finishes(netns, tmp_path,
                                                                   monkeypatch):
    lab, made = _lab("file", netns)
    fake = FaultyIp(tmp_path / "ip")
    runner = fake.runner(monkeypatch)
    api.create(lab, runner, check=False)
    fake.reset()
    api.destroy(lab=lab.name, runner=runner)
    calls = fake.count
    _restore(made)
    baseline = snapshot(made)
    for k in range(1, calls + 1):
        api.create(lab, runner, check=False)
        fake.reset(at=k, mode="fail")
        try:
            api.destroy(lab=lab.name, runner=runner)
        except VethwrapError as error:
            assert error.exit_code == 1 and "\n" not in error.line()
            assert "command failed: ip" in error.line()
        fake.reset()
        api.destroy(lab=lab.name, runner=runner)
        _restore(made)
        assert not differences(baseline, snapshot(made)), k
        FAULTS["points"] += 1
    assert calls >= 2
    print(f"\ndestroy: {calls} fault points")


EDITED = {  # examples/chain.yaml edited: one edit only adds (c after b), one also removes (b)
    "adds": """name: chain
subnet: 10.0.0.0/24
namespaces: [a, r, b, c]
links: [[a, r], [r, b], [b, c]]
routes:
  a: [{to: 10.0.0.0/24, via: 10.0.0.2}]
  r: [{to: 10.0.0.8/30, via: 10.0.0.6}]
  b: [{to: 10.0.0.0/24, via: 10.0.0.5}]
  c: [{to: 10.0.0.0/24, via: 10.0.0.9}]
forwarding: [r, b]
""",
    "removes": """name: chain
subnet: 10.0.0.0/24
namespaces: [a, r, c]
links: [[a, r], [r, c]]
routes:
  a: [{to: 10.0.0.0/24, via: 10.0.0.2}]
  c: [{to: 10.0.0.0/24, via: 10.0.0.5}]
forwarding: [r]
""",
}


def _edited(kind: str, tmp_path) -> str:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(EDITED[kind])
    return str(path)


def _wired(lab) -> dict:
    from faultip import wiring

    present = set(ip("netns", "list").stdout.split())
    return {ns: wiring(ns) for ns in lab.namespaces() if ns in present}


@pytest.mark.parametrize("kind", sorted(EDITED))
def test_up_of_an_edited_file_fails_at_every_call(kind, netns, tmp_path, monkeypatch):
    """An edit that only adds rolls back to the lab as it was; one that removes too cannot
    bring back what it deleted (removals have no undo), so a second up must finish the job."""
    from veth_wrap.api import update

    first, made = _lab("file", netns)
    prefix = first.name[: -len("chain")]
    second = labfile.load(_edited(kind, tmp_path), prefix=prefix)
    netns.names.extend(second.members)
    fake = FaultyIp(tmp_path / "ip")
    runner = fake.runner(monkeypatch)
    update(first, runner)
    fake.reset()
    update(second, runner)
    calls = fake.count
    update(first, runner)
    for k in range(1, calls + 1):
        before = _wired(second)
        spaces = snapshot([])[0]
        fake.reset(at=k, mode="fail")
        try:
            update(second, runner)
        except VethwrapError as error:
            caught = error
        else:  # a tolerant read (netns ids: peers are found without them) took the fault
            fake.reset()
            assert not update(second, runner).changed
            update(first, runner)
            continue
        assert caught.exit_code == 1 and "\n" not in caught.line()
        fake.reset()
        if kind == "adds":
            assert _wired(second) == before and snapshot([])[0] == spaces, caught.line()
        else:
            update(second, runner)
            assert not update(second, runner).changed
        update(first, runner)
        FAULTS["points"] += 1
    print(f"\nup ({kind}): {calls} fault points")
    api.destroy(lab=first.name, runner=runner)


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


@pytest.mark.parametrize("shape", ["pair", "chain"])
def test_a_failed_read_back_rolls_back(shape, netns, tmp_path, monkeypatch):
    """Each namespace's read-back lines end the last step inside it: a failing one, in any
    of those steps, rolls the whole build back."""
    kind, count, existing = SHAPES[shape]
    members, made = _members(netns, count, existing)
    lab = shapes.build(members, kind=kind)
    fake = FaultyIp(tmp_path / "ip")
    runner = fake.runner(monkeypatch)
    before = snapshot(made)
    fake.reset(record=True)
    built = api.create(lab, runner)  # verified: the build's own batches carry the reads
    assert built.report.ok and built.report.probes
    calls = fake.calls()
    reading = [int(line.split()[0]) for line in calls if " -j -d -batch " in line + " "]
    assert reading and len(calls) == reading[-1], calls  # nothing is read after the build
    lasts = {call: fake.batch_lines(call) for call in reading}
    api.destroy(members, runner=runner)
    for call, last in lasts.items():
        for ns in made:
            ip("-n", ns, "link", "set", "lo", "down")
            ip("-n", ns, "addr", "flush", "dev", "lo")
            ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        fake.reset(at=call, mode="line", line=last)  # the last line: a read-back line
        with pytest.raises(VethwrapError) as caught:
            api.create(lab, runner)
        assert "command failed: ip" in caught.value.line()
        assert not differences(before, snapshot(made)), (call, caught.value.line())


@pytest.mark.parametrize("kind, count, inner", [(Kind.BRIDGE, 5, 7), (Kind.PAIR, 2, 2)])
def test_create_runs_its_steps_in_one_process(kind, count, inner, netns, tmp_path,
                                              monkeypatch):
    """A create (verified) starts one `ip` of its own; every step inside a namespace is a
    fork of it (the hub, each member and the ports; each end of a pair) reading its own
    batch, and nothing is read before or after."""
    members = [netns.name() for _ in range(count)]
    lab = shapes.build(members, kind=kind)
    fake = FaultyIp(tmp_path / "ip")
    runner = fake.runner(monkeypatch)
    fake.reset(record=True)
    built = api.create(lab, runner)
    try:
        assert built.report.ok and built.report.probes
        calls = fake.calls()
        forks = [line for line in calls if line.endswith("-batch /dev/stdin")]
        assert len(calls) - len(forks) == 1, calls
        assert len(forks) == inner, calls
        assert calls[0].split()[1:] == ["-batch", "-"], calls
    finally:
        api.destroy_built(built, runner)
