"""destroy --all on recorded facts: every lab's objects go, decoys that look like ours stay."""

from __future__ import annotations

import json

import pytest
from fakes import RecordingRunner

from veth_wrap import api
from veth_wrap.kernel.inventory import labs
from veth_wrap.run import commands as rendering
from veth_wrap.run.runner import Result


def _link(name: str, index: int, alias: str = "", kind: str = "veth") -> dict:
    item = {"ifname": name, "ifindex": index, "flags": ["UP"], "operstate": "UP",
            "linkinfo": {"info_kind": kind}, "addr_info": []}
    return dict(item, ifalias=alias) if alias else item


KERNEL = {
    "a1": [_link("lo", 1, "vethwrap/A/netns/pair"), _link("vw-a2", 2, "vethwrap/A/end/pair")],
    "a2": [_link("lo", 1, "vethwrap/A/netns/pair"), _link("vw-a1", 2, "vethwrap/A/end/pair")],
    "b1": [_link("lo", 1, "vethwrap/B/netns/bridge"), _link("vb-B", 2, "vethwrap/B/member/bridge")],
    "kept": [_link("lo", 1), _link("vb-B", 2, "vethwrap/B/member/bridge"), _link("eth9", 3)],
    "vethwrap-B": [_link("lo", 1, "vethwrap/B/hub/bridge"),
                   _link("vbr-B", 2, "vethwrap/B/bridge/bridge", "bridge")],
    "plain": [_link("lo", 1), _link("vw-x", 2), _link("vbr-x", 3, kind="bridge")],
    "vethwrap-foo": [_link("lo", 1, "vethwrap/not/a-mark"), _link("vb-foo", 2, "vethwrap-ish")],
}
ROOT = [_link("lo", 1), _link("eth0", 2), _link("vp-foo", 3, "vethwrap/too/few")]


@pytest.fixture(autouse=True)
def no_name_files(monkeypatch):
    """The recorded kernel has no /etc/netns and no unnamed namespaces: the machine's own
    files and processes (other labs running meanwhile) are not its."""
    from veth_wrap.kernel import nameread, procs

    monkeypatch.setattr(nameread, "stale", lambda existing, runner: [])
    monkeypatch.setattr(procs, "orphans", lambda inodes, runner: {})


def _answer(argv: tuple, stdin):
    if argv == ("ip", "-j", "netns", "list"):
        return Result(argv, json.dumps([{"name": ns} for ns in KERNEL]), "", 0)
    if argv == ("ip", "-batch", "-"):
        docs = [KERNEL[line.split()[2]] if line.endswith("addr show") else []
                for line in stdin.splitlines()]
        return Result(argv, "".join(json.dumps(doc) + "\n" for doc in docs), "", 0)
    if argv[:2] == ("ip", "-j"):
        return Result(argv, json.dumps(ROOT), "", 0)
    raise AssertionError(f"destroy --all ran {argv}: only reads are expected")


def _commands(plan) -> list[str]:
    fed = [rendering.stdin(step) for step in plan.steps]
    return [" ".join(rendering.argv(step)) + (f" <<{stdin!r}" if stdin else "")
            for step, stdin in zip(plan.steps, fed)]


def test_destroy_all_plans_every_lab_and_no_decoy(monkeypatch):
    from veth_wrap.kernel import nameread

    # recorded namespaces, not this host's: its /etc/netns and logs are no part of them
    monkeypatch.setattr(nameread, "marked", lambda lab=None: [])
    monkeypatch.setattr(nameread, "log_labs", lambda: [])
    monkeypatch.setattr(nameread, "read", lambda names: {})
    plan = api.destroy_targets(everything=True, runner=RecordingRunner(_answer))
    commands = _commands(plan)
    assert commands == ["ip -n kept link del vb-B",
                        "ip -batch - <<'netns del a1\\nnetns del a2\\nnetns del b1\\n"
                        "netns del vethwrap-B\\n'"], commands
    text = "\n".join(rendering.script(plan))
    for decoy in ("plain", "vethwrap-foo", "vw-x", "vbr-x", "vp-foo", "eth9", "eth0"):
        assert decoy not in text


def test_destroy_of_one_lab_leaves_the_other():
    plan = api.destroy_targets(lab="A", runner=RecordingRunner(_answer))
    assert _commands(plan) == ["ip -batch - <<'netns del a1\\nnetns del a2\\n'"]


def test_destroying_other_namespaces_leaves_a_host_bridge_lab_alone():
    from veth_wrap.compile.destroy import destroy_plan
    from veth_wrap.kernel.state import NetnsState, parse_links

    root = NetnsState(None, parse_links([
        _link("lo", 1), _link("vbr-H", 2, "vethwrap/H/bridge/bridge", "bridge"),
        _link("vp-h1", 3, "vethwrap/H/port/bridge"), _link("vp-h2", 4, "vethwrap/H/port/bridge")]))
    views = labs({}, root)  # the members were not read: only the root namespace was
    assert destroy_plan(["absent"], {}, views, root).empty
    one = destroy_plan(["h1"], {}, views, root)
    assert [op.args for step in one.steps for op in step.ops] == [("link", "del", "vp-h1")]
    both = destroy_plan(["h1", "h2"], {}, views, root)
    assert {op.args[-1] for step in both.steps for op in step.ops} == {"vp-h1", "vp-h2", "vbr-H"}
    alone = NetnsState(None, {k: v for k, v in root.links.items() if not k.startswith("vp-")})
    assert destroy_plan([], {}, labs({}, alone), alone).empty  # a bridge left without ports
    named = destroy_plan([], {}, labs({}, alone), alone, named={"H"})
    assert [op.args for step in named.steps for op in step.ops] == [("link", "del", "vbr-H")]
