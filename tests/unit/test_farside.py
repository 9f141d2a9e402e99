"""A bridge's veth made from its member's own step, where that lets the member be added late."""

from __future__ import annotations

from veth_wrap.run.farside import far_side
from veth_wrap.steps import Kind, Op, Step


def _veth(member: str, early: bool = False) -> Op:
    """The hub's veth to member: its port vp-MEMBER in the hub, vb in member."""
    return Op(Kind.ADD_VETH, ("link", "add", "vb", "netns", member, "type", "veth", "peer",
                              "name", f"vp-{member}"), ("link", "del", f"vp-{member}"),
              undo_netns="hub", creates=(("link", "hub", f"vp-{member}"), ("link", member, "vb")),
              gone_with=frozenset({("netns", "hub"), ("netns", member)}),
              target=f"vp-{member}", netns=member, early=early)


def _up(ifname: str, early: bool = False) -> Op:
    return Op(Kind.SET_LINK, ("link", "set", ifname, "up"), target=ifname, early=early)


def _lab(early: bool = False) -> list[Step]:
    bridge = Op(Kind.ADD_BRIDGE, ("link", "add", "br", "type", "bridge"), target="br")
    hub = [bridge] + [op for m in ("a", "b") for op in (_veth(m, early), _up(f"vp-{m}", early))]
    attach = [Op(Kind.SET_LINK, ("link", "set", f"vp-{m}", "master", "br"), target=f"vp-{m}")
              for m in ("a", "b")]
    return [Step(tuple(hub), "hub"), Step((_up("vb"),), "a"), Step((_up("vb"),), "b"),
            Step(tuple(attach), "hub")]


def test_each_member_makes_its_own_veth_and_the_ports_come_up_where_they_join():
    got = far_side(_lab())
    assert [op.kind for op in got[0].ops] == [Kind.ADD_BRIDGE]
    for step, member in zip(got[1:3], ("a", "b")):
        made = step.ops[0]
        assert made.args == ("link", "add", "vb", "type", "veth", "peer", "name", f"vp-{member}",
                             "netns", "hub")
        assert (made.netns, made.undo, made.undo_netns) == ("hub", ("link", "del", "vb"), member)
        assert made.creates == _veth(member).creates
    assert [op.target for op in got[3].ops] == ["vp-a", "vp-b", "vp-a", "vp-b"]
    assert [op.args[-1] for op in got[3].ops[:2]] == ["up", "up"]  # up, in order, then joined
    assert far_side(got) == got  # made from the member, it stays there


def test_an_early_op_stays_where_it_was_planned():
    assert far_side(_lab(early=True)) == _lab(early=True)


def test_without_a_later_step_in_the_hub_the_port_stays_up_where_it_was_made():
    steps = _lab()[:3]
    assert far_side(steps) == steps


def test_a_route_through_the_near_end_moves_with_it():
    route = Op(Kind.ADD_ROUTE, ("route", "add", "10.1.0.0/24", "dev", "vp-a"),
               gone_with=frozenset({("link", "hub", "vp-a")}), target="10.1.0.0/24")
    steps = _lab()
    steps[0] = Step(steps[0].ops + (route,), "hub")
    got = far_side(steps)
    assert route not in got[0].ops and route in got[3].ops
    assert got[3].ops.index(route) < len(got[3].ops) - 2  # before the ports join


def test_a_member_touched_before_its_step_keeps_the_veth_in_the_hub():
    steps = _lab()
    steps.insert(1, Step((Op(Kind.SET_SYSCTL, (), target="x", netns="a"),)))
    got = far_side(steps)
    assert _veth("a") in got[0].ops and _veth("b") not in got[0].ops


def test_nothing_moves_past_a_gateway_that_reads_the_namespace():
    """A gateway starting between the member's step and the ports' step finds the hub as
    planned (an uplink reads its routes): the ports stay up where they were made."""
    gateway = Op(Kind.START_GATEWAY, ("pasta", "--netns", "hub"), target="hub")
    steps = _lab()
    steps.insert(3, Step((gateway,), program="env"))
    assert far_side(steps) == steps


def test_a_step_of_the_kernel_alone_in_between_does_not_hold_the_move_back():
    steps = _lab()
    steps.insert(3, Step((Op(Kind.ADD_ADDRESS, ("addr", "add", "10.9.0.1/24", "dev", "x"),
                             target="x"),), "other"))
    assert far_side(steps) != steps
