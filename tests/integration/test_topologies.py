"""Bridge, chain and mesh on real namespaces: create verified, pingall, show, destroy."""

from __future__ import annotations

import json
import subprocess

import pytest
from inprocess import vethwrap

from veth_wrap.compile import create as compile_plan
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind
from veth_wrap.run import commands


def build_and_check(members: list[str], lab: str, kind: str) -> dict:
    """Create (verified), pingall the full matrix, show; return show's lab entry."""
    done = vethwrap("create", *members, "--topology", kind, "--lab", lab, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["topology"] == kind
    matrix = vethwrap("pingall", *members, "--json")
    assert matrix.returncode == 0, matrix.stderr
    data = json.loads(matrix.stdout)
    n = len(members)
    assert data["total"] == data["answered"] == n * (n - 1)
    pairs = {(p["source"], p["target"]) for p in data["pairs"] if p["replied"]}
    assert pairs == {(a, b) for a in members for b in members if a != b}
    shown = vethwrap("show", *members, "--json")
    assert shown.returncode == 0, shown.stderr
    (entry,) = [e for e in json.loads(shown.stdout)["labs"] if e["lab"] == lab]
    assert entry["topology"] == kind
    assert {ns["name"] for ns in entry["namespaces"]} >= set(members)
    return entry


def destroy(lab: str) -> None:
    """Destroy the lab by name; `unchanged` then checks that nothing is left."""
    done = vethwrap("destroy", "--lab", lab)
    assert done.returncode == 0, done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("count", [3, 10])
def test_bridge(netns, unchanged, count):
    members = [netns.name() for _ in range(count)]
    lab = netns.name()
    entry = build_and_check(members, lab, "bridge")
    assert entry["hub"] == f"vethwrap-{lab}"
    (hub,) = [ns for ns in entry["namespaces"] if ns["name"] == entry["hub"]]
    interfaces = {i["name"]: i for i in hub["interfaces"]}
    bridges = [i for i in interfaces.values() if i["role"] == "bridge"]
    assert len(bridges) == 1
    ports = [i for i in interfaces.values() if i["role"] == "port"]
    assert len(ports) == count
    assert all(p["master"] == bridges[0]["name"] for p in ports)
    destroy(lab)


def forwarding(ns: str) -> str:
    """The namespace's own net.ipv4.ip_forward, read inside it."""
    return subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.integration
def test_chain_of_five_forwards_in_the_middle_only(netns, unchanged):
    members = [netns.name() for _ in range(5)]
    lab = netns.name()
    entry = build_and_check(members, lab, "chain")
    assert entry["hub"] is None
    assert [forwarding(ns) for ns in members] == ["0", "1", "1", "1", "0"]
    destroy(lab)


@pytest.mark.integration
def test_mesh_of_five_has_a_link_per_pair(netns, unchanged):
    members = [netns.name() for _ in range(5)]
    lab = netns.name()
    entry = build_and_check(members, lab, "mesh")
    ends = [i for ns in entry["namespaces"] for i in ns["interfaces"]]
    assert len(ends) == 2 * 10
    destroy(lab)


def test_mesh_refusal_names_the_pair_count():
    done = vethwrap("create", *[f"m{i}" for i in range(30)], "--topology", "mesh", "--dry-run")
    assert done.returncode == 2
    assert "435" in done.stderr and "--topology bridge" in done.stderr
    assert done.stdout == ""


def test_host_bridge_plan_puts_bridge_and_ports_in_the_root_namespace():
    lab = shapes.build(["hb0", "hb1", "hb2"], kind=Kind.BRIDGE, lab="hb0", host_bridge=True)
    plan = compile_plan.create_plan(lab, {})
    assert lab.hub is None
    root = plan.steps[0]
    assert root.netns is None
    lines = [commands.line(op) for op in root.ops]
    bridge = lab.bridges[0].name
    assert f"link add {bridge} type bridge mcast_snooping 0" in lines
    assert f"link set {bridge} addrgenmode none alias vethwrap/hb0/bridge/bridge" in lines
    for member in lab.members:
        port = [ln for ln in lines if ln.startswith("link add ") and f"netns {member} " in ln]
        assert len(port) == 1
    assert not any(line.startswith("netns add vethwrap-") for line in lines)
    inside = plan.steps[1:-1]  # a step inside each member (the walker runs them as one)
    assert [step.netns for step in inside] == list(lab.members)
    attach = plan.steps[-1]  # the ports join the bridge once the members are up
    assert attach.netns is None and len(plan.steps) == 2 + len(lab.members)
    assert {commands.line(op) for op in attach.ops} == {f"link set vp-{m} master {bridge}"
                                                for m in lab.members}
    script = "\n".join(commands.script(plan))
    assert "ip -batch - <<'EOF'" in script and "vethwrap-" not in script
