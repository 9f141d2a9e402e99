"""Verification's first read riding the build's own batches: where each read goes, and what
a veth's far end says about the near one's carrier."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from veth_wrap import api
from veth_wrap.check.readback import implied_carrier
from veth_wrap.check.verify import reads_for
from veth_wrap.compile.create import create_plan
from veth_wrap.errors import VethwrapError
from veth_wrap.kernel import state
from veth_wrap.model import shapes
from veth_wrap.model.facts import LinkState, NetnsState
from veth_wrap.model.topology import Kind
from veth_wrap.run import commands, schedule
from veth_wrap.run.readback import fold
from veth_wrap.run.reads import Reads
from veth_wrap.steps import Kind as OpKind
from veth_wrap.steps import Op, Plan, Step

LINKS = OpKind.READ_LINKS


def _reads(step: Step) -> list[tuple]:
    return [(op.kind, op.netns) for op in step.ops if op.kind in (LINKS, OpKind.READ_ROUTE)]


def test_each_namespace_is_read_at_the_end_of_its_own_last_step():
    lab = shapes.build(["ns0", "ns1", "ns2"], kind=Kind.CHAIN)
    plan = create_plan(lab, {})
    steps = fold(schedule.shown(plan).steps, reads_for(lab))
    inside = {step.netns: step for step in steps if step.netns}
    for ns in lab.members:
        got = _reads(inside[ns])
        assert got[0] == (LINKS, ns) and all(read[1] == ns for read in got), got
        assert inside[ns].ops[-len(got)].kind is LINKS  # after every change in it
    assert sum(len(_reads(step)) for step in steps) == 3 + 3  # links each, a hop each
    assert all(not _reads(step) for step in steps if step.netns is None)
    # the dry run never shows them
    shown = commands.script(Plan(steps))
    assert not any("addr show" in line or "route get" in line for line in shown)


def test_a_namespace_touched_after_its_own_step_is_read_after_the_last_change():
    steps = [Step((Op(OpKind.SET_LINK, ("link", "set", "x", "up")),), "ns0"),
             Step((Op(OpKind.ADD_VETH, ("link", "add", "y", "type", "veth", "peer", "name", "z",
                                        "netns", "ns0"), netns="ns0"),), "ns1")]
    got = fold(steps, Reads(("ns0", "ns1")))
    assert _reads(got[0]) == []  # ns1's step changed ns0 later
    assert _reads(got[1]) == [(LINKS, "ns1")]
    assert got[2].netns == "ns0" and _reads(got[2]) == [(LINKS, "ns0")]


def test_a_last_step_that_reads_stdin_of_its_own_carries_no_reads():
    """Its stdin is its input, not lines: verification reads by itself afterwards."""
    steps = [Step((Op(OpKind.ADD_FIREWALL, ("netns", "exec", "ns1", "nft", "-f", "-")),),
                  input="table inet t {}\n")]
    assert fold(steps, Reads(("ns0", "ns1"))) == steps


def _veth(name: str, index: int, peer: int, lower_up: bool) -> LinkState:
    flags = ["BROADCAST", "UP"] + (["LOWER_UP"] if lower_up else [])
    return LinkState(name, index, "veth", True, "UP" if lower_up else "LOWERLAYERDOWN", (),
                     peer_index=peer, raw={"flags": flags})


def _pair_facts(first_lit: bool, second_lit: bool, second_up: bool = True) -> dict:
    far = _veth("vw-ns0", 7, 5, second_lit)
    far = far if second_up else dataclasses.replace(far, up=False)
    return {"ns0": NetnsState("ns0", {"vw-ns1": _veth("vw-ns1", 5, 7, first_lit)}),
            "ns1": NetnsState("ns1", {"vw-ns0": far})}


def test_a_far_end_read_later_with_carrier_lends_it_to_the_near_end():
    lab = shapes.build(["ns0", "ns1"])
    got = implied_carrier(lab, _pair_facts(False, True))
    assert got["ns0"].links["vw-ns1"].lower_up and got["ns0"].links["vw-ns1"].carrier


@pytest.mark.parametrize("facts", [
    _pair_facts(False, False),  # the far end has no carrier either
    _pair_facts(False, True, second_up=False),  # the far end is down
    dict(reversed(list(_pair_facts(False, True).items()))),  # the far end was read first
])
def test_carrier_is_not_lent_without_proof(facts):
    got = implied_carrier(shapes.build(["ns0", "ns1"]), facts)
    assert not got["ns0"].links["vw-ns1"].lower_up


@pytest.mark.integration
def test_a_far_end_that_never_comes_up_fails_the_create(netns, monkeypatch):
    """The near end is read before the far end's step; when that step leaves the far end
    down, nothing lends carrier: the far side's own reads fail (its route to the near end
    is gone with it), and the create says so and rolls back."""
    monkeypatch.setattr(importlib.import_module("veth_wrap.check.verify"), "SETTLE", 0.2)
    a, b = netns.name(), netns.name()
    lab = shapes.build([a, b])

    def planner(lab, runner):
        plan = api.plan(lab, runner)
        last = max(i for i, step in enumerate(plan.steps) if step.netns == a)
        ops = tuple(dataclasses.replace(op, args=tuple(w for w in op.args if w != "up"))
                    if op.kind is OpKind.SET_LINK else op
                    for op in plan.steps[last].ops)
        plan.steps[last] = dataclasses.replace(plan.steps[last], ops=ops)
        return plan

    with pytest.raises(VethwrapError) as caught:
        api.create(lab, planner=planner)
    assert "route get" in caught.value.line() and "unreachable" in caught.value.line()
    assert not set(state.list_netns()) & {a, b}
