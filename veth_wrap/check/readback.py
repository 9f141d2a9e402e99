"""Verification's first read, carried by the build's own last batch instead of a process more.

Once the last step of a plan has run, the kernel holds the whole lab: the `ip -j` reads that
verification starts with (each namespace's links and addresses, each probed hop's route) give
the same answer as lines at the end of that step as from a batch of their own. In its own
namespace such a line runs in the step's process; every other namespace's reads run as one
`ip -j -batch` forked into it by the same root batch. The lines change nothing, and the dry
run leaves them out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Optional

from veth_wrap.kernel.state import NetnsState, json_stream, parse_links
from veth_wrap.model.topology import Kind, Lab
from veth_wrap.run.fuse import fusable
from veth_wrap.steps import Op, Plan, Step

ROUTED = (Kind.PAIR, Kind.CHAIN, Kind.MESH)  # kinds whose routes verification checks


@dataclass
class Seen:
    """What the build's last batch read back: facts by namespace, route devices by hop."""

    facts: dict[str, NetnsState] = field(default_factory=dict)
    routes: dict[tuple[str, str], Optional[str]] = field(default_factory=dict)


def state_spaces(lab: Lab, hub_from: int) -> tuple[str, ...]:
    """The namespaces verification reads: all of them, or for a big bridge the hub alone."""
    hub_only = lab.hub is not None and len(lab.members) >= hub_from \
        and all(link.b.netns == lab.hub for link in lab.links)
    return (lab.hub,) if hub_only else lab.namespaces()


def fold(plan: Plan, lab: Lab, spaces: Iterable[str],
         hops: Iterable[tuple[str, str]]) -> Plan:
    """plan with the reads of spaces (links) and hops (source, address) after their last change.

    A namespace's reads join the last step that touches it when that step runs inside it
    (its own process, no fork more): later steps change it no further, but for the carrier
    of a veth whose far end comes up later, which verification reads off that far end
    (implied_carrier). Any other namespace's reads form one step of their own after the
    last change, run in the same root batch (run/fuse): one fork a namespace. When the last
    step runs alone (not fusable) they join it as `netns exec` lines instead. Unchanged
    when the last step cannot carry them: a `tc` step, one of a wave of batches that run at
    once (the others may not have finished), or a lab with ends in the root namespace,
    which verification reads itself.
    """
    at = max((i for i, step in enumerate(plan.steps) if step.program in ("ip", "tc")),
             default=None)  # after the kernel's last change; files (hosts) may follow
    last = plan.steps[at] if at is not None else None
    if last is None or last.program != "ip" or last.group \
            or any(end.netns is None for end in lab.ends()):
        return plan
    wanted: dict[str, list[Op]] = {}
    for ns in spaces:
        wanted.setdefault(ns, []).append(Op(("addr", "show"), read=("links", ns)))
    for src, addr in hops:
        wanted.setdefault(src, []).append(Op(("route", "get", addr), read=("route", src, addr)))
    steps = list(plan.steps[:at + 1])
    tail: list[Step] = []
    for ns, ops in wanted.items():
        where = _last_touch(steps, ns)
        if where is None and ns != last.netns and fusable(last):
            tail.append(Step(tuple(ops), ns, comment=f"read back {ns}"))
            continue
        if where is None:
            where = at
            ops = [op if ns == last.netns else _foreign(op, ns) for op in ops]
        steps[where] = dataclasses.replace(steps[where], ops=steps[where].ops + tuple(ops))
    return dataclasses.replace(plan, steps=steps + tail + plan.steps[at + 1:])


def _last_touch(steps: list[Step], ns: str) -> Optional[int]:
    """The index of the last step that touches ns, when it runs inside ns and can carry reads
    (an `ip` batch of the walker's, not one of a wave); else None."""
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        if step.netns == ns or any(ns in op.args for op in step.ops):
            ok = step.netns == ns and fusable(step) and not step.group
            return index if ok else None
    return None


def _foreign(op: Op, ns: str) -> Op:
    """A read of another namespace as a line of this step: a `netns exec` of its own."""
    return Op(("netns", "exec", ns, "ip", "-j", "-d") + op.args, read=op.read)


def seen(read: list[tuple[Step, str]]) -> Optional[Seen]:
    """Parse the JSON that read-back lines printed, in order; None when there were none."""
    if not read:
        return None
    found = Seen()
    for step, stdout in read:
        docs = json_stream(stdout)
        for op in (op for op in step.ops if op.read):
            doc = next(docs, None)
            if op.read[0] == "links":
                found.facts[op.read[1]] = NetnsState(op.read[1], parse_links(doc or []))
            else:
                found.routes[op.read[1:]] = doc[0].get("dev") if doc else None
    return found


def implied_carrier(lab: Lab, facts: dict[str, NetnsState]) -> dict[str, NetnsState]:
    """facts (in the order they were read) with carrier given to a veth end read before its
    far end came up, when that far end, read later, has carrier: a veth has carrier only
    while both its ends are up, so the far end shows that the near one has it too."""
    order = {ns: index for index, ns in enumerate(facts)}
    out = dict(facts)
    for link in lab.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if order.get(there.netns, -1) <= order.get(here.netns, len(order)):
                continue
            mine = out[here.netns].links.get(here.ifname)
            far = out[there.netns].links.get(there.ifname)
            if mine and far and mine.kind == far.kind == "veth" and mine.up and far.up \
                    and far.lower_up and not mine.lower_up and far.peer_index == mine.ifindex:
                flags = [*mine.raw.get("flags", []), "LOWER_UP"]
                lit = dataclasses.replace(mine, operstate="UP", raw={**mine.raw, "flags": flags})
                state = out[here.netns]
                out[here.netns] = dataclasses.replace(state, links={**state.links,
                                                                    here.ifname: lit})
    return out
