"""A veth made from its far end's own step, where that lets the far namespace be added late.

A bridge's step makes each member's veth (`link add M netns F type veth peer name P`) and
brings the port up; the member's step then sets its end. Made from the member's step instead
(`link add M type veth peer name P netns H`), with the port brought up in the bridge's next
step (where the ports join), nothing touches the member before its own step: run/late adds
it right there, marked by that step, and run/together may run the members' steps at once.
The move is the schedule's because it is only about speed: the lab built is the same.

It is made only where it changes nothing a later step relies on and lets the far namespace
be added late: the far end's step is its namespace's first and the next to touch it,
nothing in between uses the near end, a later step in the near namespace takes what
followed the veth there and needs the near end (the port coming up, a route through it),
and no op moved is early (an end that talks IPv6 comes up as planned, long before its port
joins a bridge). Ends and namespaces come from the op's `creates` and netns, never its
words: the words of the veth made from the far side are written here.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from veth_wrap.steps import Kind, Op, Step


def far_side(steps: list[Step]) -> list[Step]:
    """steps with each veth that can move made from its far end's own step."""
    out = list(steps)
    placed: dict[int, int] = {}  # step index -> ops moved to its front so far (kept in order)
    for index in range(len(out)):
        for op in out[index].ops:
            moved = _move(out, index, op, placed)
            if moved is not None:
                out = moved
    return out


def _move(steps: list[Step], index: int, veth: Op,
          placed: dict[int, int]) -> Optional[list[Step]]:
    """steps with veth (an op of steps[index]) made from its far end's step, or None."""
    here = steps[index].netns
    far = veth.netns
    if veth.kind is not Kind.ADD_VETH or veth.early or here is None or far in (None, here):
        return None
    near = next((key for key in veth.creates if key[:2] == ("link", here)), None)
    if any(step.netns == far for step in steps[:index]):  # its first step ran before
        return None
    own = _own_step(steps, index, far)
    if near is None or own is None or steps[own].program != "ip":
        return None
    after = [op for op in steps[index].ops if op is not veth and _needs(op, near)]
    later = _next_in(steps, own, here)
    if any(op.early for op in after) or (after and later is None) \
            or _uses(steps[index + 1:own], here, near[2]):
        return None
    out = list(steps)
    out[index] = _without(out[index], [veth, *after])
    _put(out, own, [_flipped(veth, near)], placed)
    if after:
        _put(out, later, after, placed)
    return out


def _put(steps: list[Step], index: int, ops: list[Op], placed: dict[int, int]) -> None:
    """Put ops at the front of steps[index], after those moved there before."""
    at = placed.get(index, 0)
    old = steps[index].ops
    steps[index] = dataclasses.replace(steps[index], ops=old[:at] + tuple(ops) + old[at:])
    placed[index] = at + len(ops)


def _own_step(steps: list[Step], index: int, ns: str) -> Optional[int]:
    """The index of ns's own step after index, when nothing before it touches ns."""
    for later in range(index + 1, len(steps)):
        step = steps[later]
        if step.netns == ns:
            return later if step.input is None else None
        if any(op.netns == ns for op in step.ops):
            return None
    return None


def _next_in(steps: list[Step], index: int, ns: str) -> Optional[int]:
    """The first `ip` step inside ns after index."""
    return next((i for i in range(index + 1, len(steps))
                 if steps[i].netns == ns and steps[i].program == "ip"
                 and steps[i].input is None), None)


def _needs(op: Op, end: tuple) -> bool:
    """True when op acts on the end ("link", NS, IFNAME) or goes with it (a route through it)."""
    return op.target == end[2] or end in op.gone_with


def _uses(steps: list[Step], ns: str, ifname: str) -> bool:
    """True when one of steps acts on ifname inside ns, or on what goes with it."""
    return any(step.netns == ns and any(_needs(op, ("link", ns, ifname)) for op in step.ops)
               for step in steps)


def _without(step: Step, ops: list[Op]) -> Step:
    gone = {id(op) for op in ops}
    return dataclasses.replace(step, ops=tuple(op for op in step.ops if id(op) not in gone))


def _flipped(veth: Op, near: tuple) -> Op:
    """The veth made inside its far end's namespace, the near end created in its own."""
    _, here, port = near
    _, far, end = next(key for key in veth.creates if key != near)
    return dataclasses.replace(
        veth, args=("link", "add", end, "type", "veth", "peer", "name", port, "netns", here),
        undo=("link", "del", end), undo_netns=far, target=end, netns=here)
