"""A namespace is added right before its own step when that step is the first to need it."""

from __future__ import annotations

from veth_wrap.run.late import late
from veth_wrap.steps import Kind, Op, Step


def _add(ns: str) -> list[Op]:
    return [Op(Kind.ADD_NETNS, (), target=ns, netns=ns),
            Op(Kind.MARK_NETNS, (), target=ns, netns=ns)]


def _veth(far: str) -> Op:
    return Op(Kind.ADD_VETH, (), target="x", netns=far)


def _up() -> Op:
    return Op(Kind.SET_LINK, (), target="x")


def test_the_first_to_need_it_is_its_own_step():
    adds = Step(tuple(_add("a") + _add("b")), comment="namespaces")
    steps = [adds, Step((_veth("b"),), "a", comment="namespace a"), Step((_up(),), "b")]
    got = late(steps)
    # b is needed by a's step first: it stays, marked as it is made; a goes last, then its
    # step marks it as it begins
    assert [op.kind for op in got[0].ops] == [Kind.ADD_NETNS, Kind.MARK_NETNS, Kind.ADD_NETNS]
    assert [op.target for op in got[0].ops] == ["b", "b", "a"]
    assert got[1].netns == "a" and got[1].ops[0].kind is Kind.MARK_NETNS
    assert got[1].comment == "namespace a" and got[2] == steps[2]


def test_an_add_with_no_root_step_before_its_step_is_a_step_of_its_own():
    steps = [Step(tuple(_add("hub"))), Step((_up(),), "hub", comment="bridge in hub"),
             Step((_up(),), "hub", comment="ports")]
    got = late(steps)
    assert got[0].ops == (steps[0].ops[0],) and got[0].comment == "namespace hub"
    assert got[1].ops[0] is steps[0].ops[1] and got[1].comment == "bridge in hub"


def test_a_root_op_after_the_add_keeps_it_where_it_is():
    sysctl = Op(Kind.SET_SYSCTL, (), target="net.ipv4.ip_forward", netns="a")
    steps = [Step(tuple(_add("a")) + (sysctl,)), Step((_up(),), "a")]
    assert late(steps) == steps


def test_a_step_that_is_no_ip_batch_cannot_mark_it():
    steps = [Step(tuple(_add("a"))), Step((Op(Kind.SET_ROOT_QDISC, (), target="x"),), "a",
                                          program="tc")]
    assert late(steps) == steps


def test_a_namespace_without_a_step_of_its_own_stays_marked_where_it_is_made():
    steps = [Step(tuple(_add("a"))), Step((_up(),), "b")]
    assert late(steps) == steps
