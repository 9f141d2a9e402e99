"""A live link change (impairments, MTU, MAC of one end) as a plan, from what the kernel holds."""

from __future__ import annotations

import dataclasses
from typing import Optional

from veth_wrap.compile.tc import change_ops, ip_ops, qdisc_words
from veth_wrap.errors import UsageError
from veth_wrap.model import lossfilter as lossbpf
from veth_wrap.model.facts import LinkState
from veth_wrap.model.linkopts import LinkOpts, loss_fraction
from veth_wrap.steps import Kind, Op, Plan

IMPAIRMENTS = ("delay", "jitter", "loss", "rate")


@dataclasses.dataclass(frozen=True)
class End:
    """One live end as read: where it is, what it is, and its impairments now."""

    netns: str
    link: LinkState
    impairments: dict
    peer: Optional[tuple[Optional[str], LinkState]] = None  # (namespace, link) at the far end


def lab_ends(facts: dict, lab: str) -> list[tuple[str, str]]:
    """Every vethwrap veth end of a lab, (namespace, interface), from the marks alone."""
    return [(ns, link.ifname) for ns, st in sorted(facts.items()) for link in st.marked()
            if link.mark.lab == lab and link.kind == "veth"]


def check_end(netns: str, ifname: str, link: Optional[LinkState]) -> LinkState:
    """The link, refused (exit 2, nothing changed) unless it is a vethwrap veth end."""
    if link is None or link.mark is None or link.kind != "veth":
        raise UsageError(f"{ifname} in {netns} is not a veth end vethwrap made",
                         f"see 'vethwrap show {netns}'")
    return link


def live_plan(end: End, opts: Optional[LinkOpts], clear: bool, netem: bool) -> Plan:
    """The steps that take one end from what it holds to what was asked, each undoable."""
    opts = opts or LinkOpts()
    ifname = end.link.ifname
    want = opts if clear else merged(end.impairments, opts)
    tc = change_ops(ifname, end.impairments, want, netem) if clear or opts.impaired else []
    plan = Plan()
    if opts.mtu is not None and end.peer is not None:
        far_ns, far = end.peer
        plan.add(_undoable(ip_ops(far.ifname, LinkOpts(mtu=opts.mtu)), far, far_ns),
                 netns=far_ns, comment=f"MTU of the peer {far.ifname}")
    plan.add(_undoable(ip_ops(ifname, opts), end.link, end.netns), netns=end.netns,
             comment=f"{ifname} in {end.netns}")
    plan.add([dataclasses.replace(_tc_with_undo(op, end.impairments), undo_netns=end.netns,
                                  undo_program="tc") for op in tc], netns=end.netns, program="tc",
             comment=f"impairments of {ifname}")
    return plan


def merged(have: dict, new: LinkOpts) -> LinkOpts:
    """Impairments already on the link, with the new ones over them: set one, keep the rest."""
    keep = {key: have[key] for key in IMPAIRMENTS if key in have}
    keep.update({k: v for k, v in new.to_json().items() if k in IMPAIRMENTS})
    return dataclasses.replace(LinkOpts(**keep), mtu=new.mtu, mac=new.mac)


def _undoable(ops: list[Op], link: LinkState, netns: Optional[str]) -> list[Op]:
    """MTU and MAC ops that set back what the link had when read."""
    found = []
    for op in ops:
        mtu = op.kind is Kind.SET_MTU
        undo = ("link", "set", "dev", op.target) + (("mtu", str(link.mtu)) if mtu
                                                     else ("address", link.mac))
        found.append(dataclasses.replace(op, undo=undo, undo_netns=netns))
    return found


def _tc_with_undo(op: Op, have: dict) -> Op:
    """A tc op with the op that puts back what `have` (read before) says the end held."""
    dev = op.target
    before = _root_words(have)
    if op.kind in (Kind.SET_ROOT_QDISC, Kind.DEL_ROOT_QDISC):
        undo = (("qdisc", "replace", "dev", dev, "root") + before if before
                else ("qdisc", "del", "dev", dev, "root"))
    elif op.kind is Kind.ADD_CLSACT:
        undo = () if have.get("filter") else lossbpf.clear_op(dev).args
    elif op.kind is Kind.SET_LOSS_FILTER and have.get("filter"):
        undo = next(put.args for put in lossbpf.ops(dev, loss_fraction(have["loss"]), "replace")
                    if put.kind is Kind.SET_LOSS_FILTER)
    elif op.kind is Kind.DEL_CLSACT:  # the loss filter goes: clsact comes back
        undo = ("qdisc", "add", "dev", dev, "clsact")
    else:
        undo = ()
    return dataclasses.replace(op, undo=undo)


def _root_words(have: dict) -> tuple[str, ...]:
    """The root qdisc `have` describes, as tc words (empty when there was none of ours)."""
    if not have.get("qdisc"):
        return ()
    keep = {k: have[k] for k in IMPAIRMENTS if k in have}
    if have.get("filter"):
        keep.pop("loss", None)  # the filter held the loss, not the qdisc
    return qdisc_words(LinkOpts(**keep), netem=have["qdisc"] == "netem") or ()
