"""Topology in, plan out: what holds for every plan of a shape (the exact plans of given labs
and facts are data: tests/data/plans, compared by test_plan_cases)."""

from __future__ import annotations

import pytest
from plancases import recorded

from veth_wrap.compile.create import create_plan
from veth_wrap.errors import ConflictError
from veth_wrap.model import names, shapes
from veth_wrap.model.topology import End, Kind, Link
from veth_wrap.run import commands, schedule
from veth_wrap.run.farside import far_side
from veth_wrap.run.late import late
from veth_wrap.run.together import grouped
from veth_wrap.steps import Kind as OpKind


def steps(plan) -> list[tuple[str, str]]:
    """Each step as the schedule runs it (and the dry run shows it): (argv joined, stdin)."""
    return [(" ".join(commands.argv(step)), commands.stdin(step) or "")
            for step in schedule.shown(plan).steps]


def test_pair_lab_from_two_names():
    lab = shapes.build(["ns0", "ns1"])
    assert lab.kind is Kind.PAIR and lab.name == "ns0" and lab.subnet == "10.0.0.0/24"
    assert lab.links == (Link(End("ns0", "vw-ns1", "end", ("10.0.0.1/24",)),
                              End("ns1", "vw-ns0", "end", ("10.0.0.2/24",))),)


def test_pair_plan_from_nothing():
    plan = create_plan(shapes.build(["ns0", "ns1"]), {})
    # the plan adds and marks both, then each one's step; the first step is the first to
    # need its namespace, so the schedule adds that one last, and its step follows the add
    # at once and marks it first, where a fork of its own would otherwise mark it
    assert steps(plan) == [
        ("ip -batch -", "netns add ns1\nnetns exec ns1 ip link set lo up alias "
         "vethwrap/ns0/netns/pair\nnetns add ns0\n"),
        ("ip -n ns0 -batch -", "link set lo up alias vethwrap/ns0/netns/pair\n"
         "link add vw-ns1 type veth peer name vw-ns0 netns ns1\n"
         "link set vw-ns1 addrgenmode none up alias vethwrap/ns0/end/pair\n"
         "addr add 10.0.0.1/24 dev vw-ns1\n"),
        ("ip -n ns1 -batch -", "link set vw-ns0 addrgenmode none up alias vethwrap/ns0/end/pair\n"
         "addr add 10.0.0.2/24 dev vw-ns0\n"),
    ]
    assert [op.kind for op in plan.steps[0].ops] == [OpKind.ADD_NETNS, OpKind.MARK_NETNS] * 2


def test_pair_plan_script_quotes_and_matches_steps():
    plan = create_plan(shapes.build(["ns0", "ns1"], subnet="192.168.7.0/29"), {})
    script = commands.script(plan, "header")
    assert script[:3] == ["# header", "# namespaces", "ip -batch - <<'EOF'"]
    assert "addr add 192.168.7.2/29 dev vw-ns0" in script
    assert sum(line == "EOF" for line in script) == len(plan.steps)


def test_dual_stack_bridge_brings_ends_up_early_and_keeps_ipv6_autoconf():
    got = steps(create_plan(shapes.build(["ns0", "ns1", "ns2"], ipv6=True), {}))
    # the members first (the hub's step makes their ends), then the hub, marked by its step
    assert got[0][1].splitlines()[-1] == "netns add vethwrap-ns0"
    assert got[1][1].splitlines()[:5] == [
        "link set lo up alias vethwrap/ns0/hub/bridge", "link add vbr-ns0 up type bridge",
        "link set vbr-ns0 alias vethwrap/ns0/bridge/bridge",
        "link add vb-ns0 netns ns0 up type veth peer name vp-ns0",
        "link set vp-ns0 up alias vethwrap/ns0/port/bridge"]
    assert "addrgenmode" not in "".join(stdin for _, stdin in got)


def test_no_addrgenmode_where_the_kernel_has_no_ipv6():
    got = steps(create_plan(shapes.build(["ns0", "ns1"]), {}, host_ipv6=False))
    assert "addrgenmode" not in "".join(stdin for _, stdin in got)
    assert "link set vw-ns1 up alias vethwrap/ns0/end/pair" in got[1][1]


def test_many_namespaces_go_in_batches_that_run_at_once():
    members = [f"ns{i}" for i in range(40)]
    plan = schedule.shown(create_plan(shapes.build(members), {}))
    groups = [step.group for step in plan.steps]
    # the hub and its bridge alone, then each member's add and step (the walker runs
    # several such runs at once), then the ports
    assert groups[:2] == ["", ""] and groups[-1] == "" and set(groups[2:-1]) == {groups[2]}
    assert groups[2] and len(groups) == 83
    assert plan.steps[0].ops[0].args == ("netns", "add", "vethwrap-ns0")  # alone: it may mount
    for i, ns in enumerate(members):
        add, inside = plan.steps[2 + 2 * i], plan.steps[3 + 2 * i]
        assert add.netns is None and add.ops[0].args == ("netns", "add", ns)
        assert inside.netns == ns and inside.ops[0].args[:4] == ("link", "set", "lo", "up")


def test_a_few_independent_members_run_in_one_process():
    """Below PARALLEL_FROM members a second process costs more than it saves."""
    plan = create_plan(shapes.build([f"ns{i}" for i in range(5)]), {})
    # made from their own side and added right before their steps, the members are apart
    groups = [step.group for step in grouped(late(far_side(plan.steps)))]
    assert groups[:2] == ["", ""] and groups[-1] == "" and len(set(groups[2:-1])) == 1
    waves = schedule.waves(plan)
    assert all(len(wave) == 1 for wave in waves)
    assert not any(step.group for step in schedule.shown(plan).steps)


def test_many_new_namespaces_of_a_chain_are_added_by_batches_at_once():
    members = [f"c{i}" for i in range(30)]
    plan = create_plan(shapes.build(members, kind=Kind.CHAIN), {})
    adds = [op for op in plan.steps[0].ops if op.kind is OpKind.ADD_NETNS]
    assert [op.target for op in adds] == members  # one step says what
    shown = schedule.shown(plan).steps
    # c0's step is the first to need c0: it is added last, right before that step
    assert [op.target for op in shown[0].ops] == ["c1", "c1"]  # alone: it may mount /run/netns
    parts = [step for step in shown if step.group == schedule.NAMESPACES]
    assert len(parts) == schedule.AT_ONCE and shown[1:1 + len(parts)] == parts
    marked = [op for op in plan.steps[0].ops if op.kind in (OpKind.ADD_NETNS, OpKind.MARK_NETNS)]
    assert [op for step in shown[:1 + len(parts)] for op in step.ops] == marked[2:]
    rest = shown[1 + len(parts)]  # then c0's add, its step right after it
    assert [op.target for op in rest.ops] == ["c0"] and shown[2 + len(parts)].netns == "c0"
    assert shown[2 + len(parts)].ops[0].kind is OpKind.MARK_NETNS
    forwarding = shown[-1]  # the routers' forwarding once all is wired
    assert {op.kind for op in forwarding.ops} == {OpKind.SET_SYSCTL}
    assert len(schedule.waves(plan)[1]) == schedule.AT_ONCE


def test_chain_plan_from_nothing():
    got = steps(create_plan(shapes.build(["ns0", "ns1", "ns2"], kind=Kind.CHAIN), {}))
    # the first namespace is added after the others, and its step (which marks it and
    # makes its link to the next) runs at once
    assert got[0] == ("ip -batch -", "".join(
        f"netns add {ns}\nnetns exec {ns} ip link set lo up alias vethwrap/ns0/netns/chain\n"
        for ns in ("ns1", "ns2")) + "netns add ns0\n")
    assert got[1] == ("ip -n ns0 -batch -",
                      "link set lo up alias vethwrap/ns0/netns/chain\n"
                      "link add vw-ns1 type veth peer name vw-ns0 netns ns1\n"
                      "link set vw-ns1 addrgenmode none up alias vethwrap/ns0/end/chain\n"
                      "addr add 10.0.0.1/30 dev vw-ns1\n"
                      "route add 10.0.0.0/24 via 10.0.0.2 dev vw-ns1\n")
    assert got[2][0] == "ip -n ns1 -batch -"  # each link made by the end whose step is first
    assert got[2][1].splitlines()[0] == "link add vw-ns2 type veth peer name vw-ns1 netns ns2"
    assert "addr add 10.0.0.2/30 dev vw-ns0" in got[2][1].splitlines()
    assert got[2][1].splitlines()[-1] == "route add 10.0.0.0/24 via 10.0.0.6 dev vw-ns2"
    assert got[3][0] == "ip -n ns2 -batch -" and " veth " not in got[3][1]
    assert got[3][1].splitlines()[-1] == "route add 10.0.0.0/24 via 10.0.0.5 dev vw-ns1"
    # the router forwards once wired
    assert got[4] == ("ip netns exec ns1 sysctl -qw net.ipv4.ip_forward=1", "")


def test_mesh_plan_from_nothing():
    lab = shapes.build(["ns0", "ns1", "ns2"], kind=Kind.MESH)
    got = steps(create_plan(lab, {}))
    assert [line for _, stdin in got for line in stdin.splitlines() if " veth " in line] == [
        "link add vw-ns1 type veth peer name vw-ns0 netns ns1",  # made from the first one
        "link add vw-ns2 type veth peer name vw-ns0 netns ns2",
        "link add vw-ns2 type veth peer name vw-ns1 netns ns2"]
    addresses = sorted(a for end in lab.ends() for a in end.addresses)
    assert addresses == ["10.0.0.1/30", "10.0.0.10/30", "10.0.0.2/30", "10.0.0.5/30",
                         "10.0.0.6/30", "10.0.0.9/30"]


def test_plan_refuses_a_namespace_of_another_lab_or_wiring():
    facts = recorded("pair")
    with pytest.raises(ConflictError, match="namespace h3p0 belongs to lab h3p0"):
        create_plan(shapes.build(["h3p1", "h3p0"]), facts)
    with pytest.raises(ConflictError, match="already wired differently"):
        create_plan(shapes.build(["h3p0", "h3other"]), {"h3p0": facts["h3p0"]})


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
