"""A namespace added as late as it can be: right before its own step, when that step is the
first to need it.

A plan adds each namespace and marks it at once (`netns exec NS ip link set lo up alias
...`), so that a crash right after leaves it findable. When nothing between the add and the
namespace's own step touches the namespace, the add moves to just before that step, and the
mark becomes the step's first line: one fork fewer, and still marked one line after it was
made. A bridge's members that make their own veths are then each a unit of their own (an
add and a step), which run/together may run at once. Which namespace an op touches is read
off its netns and its step's, never its words.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from typing import Optional

from veth_wrap.steps import Kind, Op, Step


def late(steps: list[Step]) -> list[Step]:
    """steps with each namespace's add and mark moved next to its own step, where they can."""
    moves = _moves(steps)
    if not moves:
        return steps
    moved = {id(op) for add, mark, _ in moves.values() for op in (add, mark)}
    into = {at: (ns, add, mark) for ns, (add, mark, at) in moves.items()}
    out: list[Step] = []
    for index, step in enumerate(steps):
        if index in into:
            ns, add, mark = into[index]
            comment = step.comment
            if out and _root(out[-1]):  # its step then follows its add at once
                out[-1] = dataclasses.replace(out[-1], ops=out[-1].ops + (add,))
            else:
                out.append(Step((add,), comment=f"namespace {ns}"))
                comment = f"inside {ns}" if comment == f"namespace {ns}" else comment
            out.append(dataclasses.replace(step, ops=(mark,) + step.ops, comment=comment))
            continue
        kept = tuple(op for op in step.ops if id(op) not in moved)
        if kept:
            out.append(step if len(kept) == len(step.ops) else
                       dataclasses.replace(step, ops=kept))
    return out


def _root(step: Step) -> bool:
    """True for a root `ip` step of lines (one an add can join)."""
    return step.netns is None and step.program == "ip" and step.input is None


def _moves(steps: list[Step]) -> dict[str, tuple[Op, Op, int]]:
    """Each namespace whose add can move: its add, its mark and its own step's index."""
    touch = _touches(steps)
    moves: dict[str, tuple[Op, Op, int]] = {}
    for index, step in enumerate(steps):
        if not _root(step):
            continue
        last = {op.netns: at for at, op in enumerate(step.ops)}  # where each is last reached
        for at, (op, after) in enumerate(zip(step.ops, step.ops[1:])):
            if op.kind is Kind.ADD_NETNS and after.kind is Kind.MARK_NETNS \
                    and after.netns == op.netns and last[op.netns] == at + 1:
                own = _first_use(steps, touch[op.netns], index, op.netns)
                if own is not None:
                    moves[op.netns] = (op, after, own)
    return moves


def _touches(steps: list[Step]) -> dict[str, list[int]]:
    """Each namespace's steps, in order: those inside it and those with an op reaching it."""
    touch: dict[str, list[int]] = defaultdict(list)
    for index, step in enumerate(steps):
        for ns in ({step.netns} | {op.netns for op in step.ops}) - {None}:
            touch[ns].append(index)
    return touch


def _first_use(steps: list[Step], touched: list[int], index: int, ns: str) -> Optional[int]:
    """The index of ns's own step when it is the first to touch ns after steps[index];
    None when something else needs ns first, or that step cannot mark it."""
    at = bisect.bisect_right(touched, index)
    if at == len(touched):
        return None
    step = steps[touched[at]]
    if step.netns == ns and step.program == "ip" and step.input is None:
        return touched[at]
    return None
