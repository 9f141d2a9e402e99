"""A veth made from its far end's own step, where that lets the far namespace be added late.

A bridge's step makes each member's veth (`link add M netns F type veth peer name P`) and
brings the port up; the member's step then sets its end. Made from the member's step instead
(`link add M type veth peer name P netns H`), with the port brought up in the bridge's next
step (where the ports join), nothing touches the member before its own step: run/late adds
it right there, marked by that step, and run/together may run the members' steps at once.
The move is the schedule's because it is only about speed: the lab built is the same.

It is made only where it changes nothing a later step relies on and lets the far namespace
be added late: the far end's step is its namespace's first and the next to touch it,
nothing in between uses the near end or does more than change kernel objects (a gateway
starting, a file written), a later step in the near namespace takes what
followed the veth there and needs the near end (the port coming up, a route through it),
and no op moved is early (an end that talks IPv6 comes up as planned, long before its port
joins a bridge). Ends and namespaces come from the op's `creates` and netns, never its
words: the words of the veth made from the far side are written here.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from typing import Optional

from veth_wrap.run.together import CONFINED
from veth_wrap.steps import Kind, Op, Step


def far_side(steps: list[Step]) -> list[Step]:
    """steps with each veth that can move made from its far end's own step."""
    plan = _Moves(steps)
    for index in range(len(steps)):
        plan.visit(index)
    return plan.result()


class _Moves:
    """The steps as ops move between them, with indexes that keep every question one lookup:
    a bridge of a thousand members must not cost a thousand scans of the plan."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.front: dict[int, list[Op]] = defaultdict(list)  # ops moved to a step's front
        self.kept: dict[int, list[Op]] = {}  # a visited step's ops, those moved away gone
        self.home: dict[str, int] = {}  # namespace -> index of its first own step
        self.touch: dict[str, list[int]] = defaultdict(list)  # ns -> steps acting in it
        self.ip_steps: dict[str, list[int]] = defaultdict(list)  # ns -> its `ip` line steps
        self.needs: dict[tuple, list[int]] = defaultdict(list)  # (ns, ifname) -> steps
        # steps whose effect is more than their kernel objects (a gateway starting reads the
        # routes of its namespace, a file step the lab): ops never move past one
        self.opaque = [i for i, step in enumerate(steps) if step.program not in ("ip", "tc")
                       or any(op.kind not in CONFINED for op in step.ops)]
        for index, step in enumerate(steps):
            if step.netns is not None:
                self.home.setdefault(step.netns, index)
                if step.program == "ip" and step.input is None:
                    self.ip_steps[step.netns].append(index)
            self._index(index, step.ops)

    def _index(self, index: int, ops) -> None:
        """Count ops as acting in step index (kept sorted: steps only gain ops ahead)."""
        netns = self.steps[index].netns
        spaces = {netns} | {op.netns for op in ops}
        for ns in spaces - {None}:
            _add(self.touch[ns], index)
        if netns is not None:
            for key in {(netns, op.target) for op in ops} | {
                    key[1:] for op in ops for key in op.gone_with
                    if key[0] == "link" and key[1] == netns}:
                _add(self.needs[key], index)

    def visit(self, index: int) -> None:
        """Move what can move out of step index (every op moved into it came before)."""
        ops = self.front.pop(index, []) + list(self.steps[index].ops)
        ends = _Ends(ops)
        for op in ops:
            if id(op) not in ends.gone:
                self._move(index, op, ends)
        self.kept[index] = [op for op in ops if id(op) not in ends.gone]

    def _move(self, index: int, veth: Op, ends: _Ends) -> None:
        """Make veth (an op of step index) from its far end's step, when that changes
        nothing a later step relies on."""
        here, far = self.steps[index].netns, veth.netns
        if veth.kind is not Kind.ADD_VETH or veth.early or here is None or far in (None, here):
            return
        near = next((key for key in veth.creates if key[:2] == ("link", here)), None)
        if self.home.get(far, index) < index:  # its first step ran before
            return
        own = self._own_step(index, far)
        if near is None or own is None or self.steps[own].program != "ip":
            return
        after = [op for op in ends.needing(near) if op is not veth]
        later = _after(self.ip_steps[here], own)
        if any(op.early for op in after) or (after and later is None) \
                or _between(self.needs[near[1:]], index, own) \
                or (after and _between(self.opaque, index, later)):
            return
        ends.gone.update(id(op) for op in (veth, *after))
        self._put(own, [_flipped(veth, near)])
        if after:
            self._put(later, after)

    def _own_step(self, index: int, ns: str) -> Optional[int]:
        """The index of ns's own step after index, when nothing before it touches ns."""
        first = _after(self.touch[ns], index)
        if first is None or self.steps[first].netns != ns:
            return None
        return first if self.steps[first].input is None else None

    def _put(self, index: int, ops: list[Op]) -> None:
        """Put ops at the front of step index, after those moved there before."""
        self.front[index].extend(ops)
        self._index(index, ops)

    def result(self) -> list[Step]:
        """The steps with their ops as moved."""
        return [step if self.kept[i] == list(step.ops) else
                dataclasses.replace(step, ops=tuple(self.kept[i]))
                for i, step in enumerate(self.steps)]


class _Ends:
    """A step's ops by the end each acts on or goes with, and those moved away."""

    def __init__(self, ops: list[Op]) -> None:
        self.at = {id(op): i for i, op in enumerate(ops)}
        self.by: dict = defaultdict(list)  # an ifname (a target) or a link key -> ops
        for op in ops:
            self.by[op.target].append(op)
            for key in op.gone_with:
                self.by[key].append(op)
        self.gone: set[int] = set()

    def needing(self, end: tuple) -> list[Op]:
        """The ops still here that act on end ("link", NS, IFNAME) or go with it, in order."""
        found = {id(op): op for op in self.by[end[2]] + self.by[end] if id(op) not in self.gone}
        return [found[key] for key in sorted(found, key=self.at.__getitem__)]


def _add(indexes: list[int], index: int) -> None:
    """index into a sorted list of indexes, once."""
    at = bisect.bisect_left(indexes, index)
    if at == len(indexes) or indexes[at] != index:
        indexes.insert(at, index)


def _after(indexes: list[int], index: int) -> Optional[int]:
    """The first of sorted indexes past index, or None."""
    at = bisect.bisect_right(indexes, index)
    return indexes[at] if at < len(indexes) else None


def _between(indexes: list[int], start: int, end: int) -> bool:
    """True when one of sorted indexes lies strictly between start and end."""
    found = _after(indexes, start)
    return found is not None and found < end


def _flipped(veth: Op, near: tuple) -> Op:
    """The veth made inside its far end's namespace, the near end created in its own."""
    _, here, port = near
    _, far, end = next(key for key in veth.creates if key != near)
    return dataclasses.replace(
        veth, args=("link", "add", end, "type", "veth", "peer", "name", port, "netns", here),
        undo=("link", "del", end), undo_netns=far, target=end, netns=here)
