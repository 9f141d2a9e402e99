"""Topology in, argv out: shapes.build and compile.create_plan, from nothing and from facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from veth_wrap.compile.create import create_plan
from veth_wrap.compile.destroy import destroy_plan
from veth_wrap.errors import ConflictError
from veth_wrap.kernel import state
from veth_wrap.kernel.inventory import labs
from veth_wrap.model import names, shapes
from veth_wrap.model.topology import End, Kind, Link
from veth_wrap.steps import BATCHES_AT_ONCE

DATA = Path(__file__).parent / "data" / "ip"


def steps(plan) -> list[tuple[str, str]]:
    """Each step as (argv joined, stdin) for exact comparison."""
    return [(" ".join(step.argv()), step.stdin() or "") for step in plan.steps]


def recorded(scenario: str) -> dict[str, state.NetnsState]:
    """The facts state.read parsed from a recorded `ip -batch` of `ip -j` output."""
    from veth_wrap.run.runner import RecordingRunner, Result

    text = (DATA / f"{scenario}.out").read_text()
    runner = RecordingRunner(lambda argv, stdin: Result(argv, text, "", 0))
    lines = (DATA / f"{scenario}.in").read_text().splitlines()
    order = [line.split()[2] for line in lines if line.endswith("addr show")]
    fwd = [line.split()[2] for line in lines if "sysctl" in line]
    return state.read(order, runner, forwarding=fwd)


def test_pair_lab_from_two_names():
    lab = shapes.build(["ns0", "ns1"])
    assert lab.kind is Kind.PAIR and lab.name == "ns0" and lab.subnet == "10.0.0.0/24"
    assert lab.links == (Link(End("ns0", "vw-ns1", "end", ("10.0.0.1/24",)),
                              End("ns1", "vw-ns0", "end", ("10.0.0.2/24",))),)


def test_pair_plan_from_nothing():
    plan = create_plan(shapes.build(["ns0", "ns1"]), {})
    assert steps(plan) == [
        ("ip -batch -", "netns add ns0\nnetns exec ns0 ip link set lo up alias "
         "vethwrap/ns0/netns/pair\nnetns add ns1\nnetns exec ns1 ip link set lo up alias "
         "vethwrap/ns0/netns/pair\n"),
        ("ip -n ns0 -batch -", "link add vw-ns1 type veth peer name vw-ns0 netns ns1\n"
         "link set vw-ns1 up alias vethwrap/ns0/end/pair\naddr add 10.0.0.1/24 dev vw-ns1\n"),
        ("ip -n ns1 -batch -",
         "link set vw-ns0 up alias vethwrap/ns0/end/pair\naddr add 10.0.0.2/24 dev vw-ns0\n"),
    ]


def test_pair_plan_script_quotes_and_matches_steps():
    plan = create_plan(shapes.build(["ns0", "ns1"], subnet="192.168.7.0/29"), {})
    script = plan.script("header")
    assert script[:3] == ["# header", "# namespaces", "ip -batch - <<'EOF'"]
    assert "addr add 192.168.7.2/29 dev vw-ns0" in script
    assert sum(line == "EOF" for line in script) == len(plan.steps)


def test_bridge_plan_from_nothing():
    plan = create_plan(shapes.build(["ns0", "ns1", "ns2"]), {})
    got = steps(plan)
    assert got[0] == ("ip -batch -", "".join(
        f"netns add {ns}\nnetns exec {ns} ip link set lo up alias vethwrap/ns0/{role}/bridge\n"
        for ns, role in [("ns0", "netns"), ("ns1", "netns"), ("ns2", "netns"),
                         ("vethwrap-ns0", "hub")]))
    assert got[1] == ("ip -n vethwrap-ns0 -batch -", "".join(
        f"{line}\n" for line in [
            "link add vbr-ns0 up type bridge", "link set vbr-ns0 alias vethwrap/ns0/bridge/bridge",
            *(w for n in range(3) for w in (
                f"link add vb-ns0 netns ns{n} up type veth peer name vp-ns{n}",
                f"link set vp-ns{n} up alias vethwrap/ns0/port/bridge"))]))
    # the members' few commands fork an `ip` each inside one root batch, not a step apiece
    assert got[2] == ("ip -batch -", "".join(
        f"netns exec ns{n} ip link set vb-ns0 alias vethwrap/ns0/member/bridge\n"
        f"netns exec ns{n} ip addr add 10.0.0.{n + 1}/24 dev vb-ns0\n" for n in range(3)))
    assert plan.steps[2].group == "members"
    # the ports join the bridge last: ends coming up before would flood it with IPv6 multicast
    assert got[3] == ("ip -n vethwrap-ns0 -batch -",
                      "".join(f"link set vp-ns{n} master vbr-ns0\n" for n in range(3)))
    assert len(got) == 4


def test_many_namespaces_go_in_batches_that_run_at_once():
    members = [f"ns{i}" for i in range(40)]
    plan = create_plan(shapes.build(members), {})
    parts = BATCHES_AT_ONCE
    groups = [step.group for step in plan.steps]
    assert groups == ["", *["namespaces"] * parts, "", *["members"] * parts, ""]
    lines = [op.line() for step in plan.steps for op in step.ops]
    assert sum(line.startswith("netns add ") for line in lines) == 41
    assert plan.steps[0].ops[0].args == ("netns", "add", "ns0")  # alone: it may mount /run/netns
    members_steps = plan.steps[-parts - 1:-1]
    inside = [op.args[2] for step in members_steps for op in step.ops]
    assert sorted(set(inside)) == sorted(members) and len(inside) == 80
    owners = [{op.args[2] for op in step.ops} for step in members_steps]
    assert sum(map(len, owners)) == len(members)  # a member's commands stay in one batch, in order


def test_chain_plan_from_nothing():
    got = steps(create_plan(shapes.build(["ns0", "ns1", "ns2"], kind=Kind.CHAIN), {}))
    assert got[0] == ("ip -batch -", "".join(
        f"netns add {ns}\nnetns exec {ns} ip link set lo up alias vethwrap/ns0/netns/chain\n"
        for ns in ("ns0", "ns1", "ns2")) + "netns exec ns1 sysctl -qw net.ipv4.ip_forward=1\n")
    assert got[1][1].splitlines()[0] == "link add vw-ns1 type veth peer name vw-ns0 netns ns1"
    assert got[1][1].splitlines()[-1] == "route add 10.0.0.0/24 via 10.0.0.2 dev vw-ns1"
    assert got[2][1].splitlines()[0] == "link add vw-ns2 type veth peer name vw-ns1 netns ns2"
    assert "addr add 10.0.0.2/30 dev vw-ns0" in got[2][1].splitlines()
    assert got[2][1].splitlines()[-1] == "route add 10.0.0.0/24 via 10.0.0.6 dev vw-ns2"
    assert got[3] == ("ip -n ns2 -batch -", "link set vw-ns1 up alias vethwrap/ns0/end/chain\n"
                      "addr add 10.0.0.6/30 dev vw-ns1\n"
                      "route add 10.0.0.0/24 via 10.0.0.5 dev vw-ns1\n")


def test_mesh_plan_from_nothing():
    lab = shapes.build(["ns0", "ns1", "ns2"], kind=Kind.MESH)
    got = steps(create_plan(lab, {}))
    assert [line for _, stdin in got for line in stdin.splitlines() if " veth " in line] == [
        "link add vw-ns1 type veth peer name vw-ns0 netns ns1",
        "link add vw-ns2 type veth peer name vw-ns0 netns ns2",
        "link add vw-ns2 type veth peer name vw-ns1 netns ns2"]
    addresses = sorted(a for end in lab.ends() for a in end.addresses)
    assert addresses == ["10.0.0.1/30", "10.0.0.10/30", "10.0.0.2/30", "10.0.0.5/30",
                         "10.0.0.6/30", "10.0.0.9/30"]


@pytest.mark.parametrize("scenario, members, kind, lab", [
    ("pair", ["h3p0", "h3p1"], None, None),
    ("bridge", ["h3b0", "h3b1", "h3b2"], None, "h3bl"),
    ("chain", ["h3c0", "h3c1", "h3c2"], Kind.CHAIN, None),
    ("kept", ["h3e0", "h3e1"], None, None),
])
def test_plan_is_empty_when_the_kernel_holds_the_lab(scenario, members, kind, lab):
    plan = create_plan(shapes.build(members, kind=kind, lab=lab), recorded(scenario))
    assert plan.empty
    assert plan.notes and all(note.endswith("already as asked") for note in plan.notes)


def test_plan_into_an_existing_plain_namespace_leaves_its_lo_unmarked():
    plan = create_plan(shapes.build(["h3f0", "h3new"]), recorded("plain"))
    assert steps(plan) == [
        ("ip -batch -", "netns add h3new\n"
         "netns exec h3new ip link set lo up alias vethwrap/h3f0/netns/pair\n"),
        ("ip -n h3f0 -batch -", "link add vw-h3new type veth peer name vw-h3f0 netns h3new\n"
         "addr add 127.0.0.1/8 dev lo\nlink set lo up\n"
         "link set vw-h3new up alias vethwrap/h3f0/end/pair\n"
         "addr add 10.0.0.1/24 dev vw-h3new\n"),
        ("ip -n h3new -batch -",
         "link set vw-h3f0 up alias vethwrap/h3f0/end/pair\naddr add 10.0.0.2/24 dev vw-h3f0\n"),
    ]


def test_plan_refuses_a_namespace_of_another_lab_or_wiring():
    facts = recorded("pair")
    with pytest.raises(ConflictError, match="namespace h3p0 belongs to lab h3p0"):
        create_plan(shapes.build(["h3p1", "h3p0"]), facts)
    with pytest.raises(ConflictError, match="already wired differently"):
        create_plan(shapes.build(["h3p0", "h3other"]), {"h3p0": facts["h3p0"]})


def test_destroy_plans_from_recorded_facts():
    def plan_for(scenario, targets):
        facts = recorded(scenario)
        return steps(destroy_plan(targets, facts, labs(facts)))

    assert plan_for("pair", ["h3p0", "h3p1"]) == [("ip -batch -", "netns del h3p0\n"
                                                   "netns del h3p1\n")]
    assert plan_for("kept", ["h3e0", "h3e1"]) == [("ip -n h3e0 link del vw-h3e1", ""),
                                                  ("ip netns del h3e1", "")]
    assert plan_for("bridge", ["h3b0", "h3b1", "h3b2"]) == [
        ("ip -batch -", "netns del h3b0\nnetns del h3b1\nnetns del h3b2\n"
         "netns del vethwrap-h3bl\n")]
    # One member of three goes: its namespace only; the hub keeps the others' ports.
    assert plan_for("bridge", ["h3b1"]) == [("ip netns del h3b1", "")]


LONG = "n" * 60


def test_long_names_fit_the_kernel_and_are_deterministic():
    other = "n" * 59 + "m"
    for make in (names.p2p_ifname, names.member_ifname, names.port_ifname, names.bridge_name):
        assert len(make(LONG)) <= names.IFNAMSIZ
        assert make(LONG) == make(LONG) and make(LONG) != make(other)
    assert names.p2p_ifname(LONG) == "vw-nnnnn-" + names.p2p_ifname(LONG)[-6:]
    assert names.p2p_ifname("x" * 60) == "vw-xxxxx-06ced2"  # sha1-based, stable across runs


@pytest.mark.parametrize("kind", [None, Kind.BRIDGE, Kind.CHAIN, Kind.MESH])
def test_every_shape_with_long_names_fits(kind):
    members = [LONG[:-1] + str(n) for n in range(3)] if kind else [LONG, LONG[:-1] + "x"]
    lab = shapes.build(members, kind=kind)
    assert len(lab.name) <= names.LAB_MAX and names.check_lab(lab.name)
    ifnames = [end.ifname for end in lab.ends()] + [b.name for b in lab.bridges]
    assert all(len(name) <= names.IFNAMSIZ for name in ifnames)
    assert shapes.build(members, kind=kind) == lab
