"""How a plan runs: its steps as processes, in waves of lanes, with read-back lines folded in.

A plan says what to change; this pass decides how: which `ip -batch`es run at once, which
run one after another in one root batch (run/fuse), and where verification's reads ride.
Everything it decides is about speed: any schedule of a plan builds the same lab.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

from veth_wrap.model.topology import BIG_LAB
from veth_wrap.run import fuse, readback
from veth_wrap.run.farside import far_side
from veth_wrap.run.late import late
from veth_wrap.run.reads import Reads
from veth_wrap.run.together import Placed, grouped, place, units
from veth_wrap.steps import Kind, Op, Plan, Step

# `ip -batch`es whose lines each fork an `ip` into a namespace, run at once. Entering a
# namespace takes kernel locks, so two cores get more from four such batches than from two.
AT_ONCE = 4
PARALLEL_FROM = BIG_LAB  # namespaces: below this a second process costs more than it saves
NAMESPACES = "namespaces"  # the label of the batches that add many namespaces at once
BESIDE = (Kind.MAKE_DIRS, Kind.WRITE_NAME_FILE)  # change no kernel state and need none

Lane = list[list[Step]]  # runs of steps for one process each, run one after the other
Wave = list[Lane]  # lanes that run at once


def spread(items: list, parts: int = AT_ONCE) -> list[list]:
    """items in up to `parts` consecutive runs of near-equal length (none empty)."""
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for index in range(parts):
        end = start + size + (index < extra)
        if end > start:
            runs.append(items[start:end])
        start = end
    return runs


def shown(plan: Plan) -> Plan:
    """The plan as its processes run it (what a dry run prints): many namespaces are added
    by batches at once."""
    return dataclasses.replace(plan, steps=_steps(late(far_side(plan.steps))))


def waves(plan: Plan, reads: Optional[Reads] = None) -> list[Wave]:
    """The plan's steps as waves of lanes, the reads folded into its last changes."""
    steps = _steps(late(far_side(plan.steps)))
    if reads is not None:
        steps = readback.fold(steps, reads)
    return _waves(steps)


def _steps(steps: list[Step]) -> list[Placed]:
    """steps with groups that change disjoint objects (run/together) kept only where running
    them at once pays, and a root step that adds many namespaces cut into batches that run
    at once."""
    out: list[Placed] = []
    for run in _runs(grouped(steps)):
        if run[0].group and not _pays(run):
            run = [dataclasses.replace(step, group="") for step in run]
        for step in run:
            out += _cut(step)
    return out


def _runs(steps: list[Placed]) -> list[list[Placed]]:
    """Consecutive steps sharing a group (or one ungrouped step each)."""
    runs: list[list[Placed]] = []
    for step in steps:
        if runs and step.group and runs[-1][-1].group == step.group:
            runs[-1].append(step)
        else:
            runs.append([step])
    return runs


def _pays(run: list[Placed]) -> bool:
    """True when running a run's steps at once pays: each would be a process of its own
    anyway, or enough of them add a namespace to keep several root batches busy (adding
    one, and entering it first, is most of the kernel's work; a step that only sets
    addresses in a namespace costs little more inside a batch than beside it)."""
    if not all(fuse.fusable(step) for step in run):
        return True
    return sum(unit[0].netns is None and len(unit) > 1 for unit in units(run)) >= PARALLEL_FROM


def _cut(step: Placed) -> list[Placed]:
    """A root step adding PARALLEL_FROM namespaces or more: the first alone (only one `ip`
    turns /run/netns into a mount point on a freshly booted host), the others in batches at
    once, then the rest of its ops; any other step as it is."""
    if step.netns is not None or step.program != "ip" or step.group:
        return [step]
    adds, rest = _adds(step.ops)
    if len(adds) < PARALLEL_FROM:
        return [step]
    first = dataclasses.replace(step, ops=adds[0])
    parts = [dataclasses.replace(step, ops=tuple(op for ops in part for op in ops),
                                 group=NAMESPACES) for part in spread(adds[1:])]
    after = [place(Step(rest, comment="root namespace"))] if rest else []
    return [first, *parts, *after]


def _adds(ops: Iterable[Op]) -> tuple[list[tuple[Op, ...]], tuple[Op, ...]]:
    """A step's namespace adds, each with the mark that follows it, and its other ops (an
    add without a mark among them: the step that marks it must follow it at once)."""
    adds: list[tuple[Op, ...]] = []
    rest: list[Op] = []
    ops = list(ops)
    for op, after in zip(ops, ops[1:] + [None]):
        if op.kind is Kind.ADD_NETNS and after and after.kind is Kind.MARK_NETNS \
                and after.target == op.target:
            adds.append((op, after))
        elif not (op.kind is Kind.MARK_NETNS and adds and adds[-1][1] is op):
            rest.append(op)
    return adds, tuple(rest)


def _waves(plain: list[Step]) -> list[Wave]:
    """Waves of lanes run at once; each lane's runs (run/fuse) go one after the other.

    Consecutive steps that share a group go as up to AT_ONCE lanes at once.
    The others go in order, consecutive `ip` steps in one process. The name files go as a
    lane beside the run that follows the last wave at once (a bridge's ports, in one process
    inside the hub), when there is such a wave: their work then takes the core that run
    leaves idle.
    """
    steps = [place(step) for step in plain]  # read-back steps come in plain
    beside = [step for step in steps if step.kind in BESIDE] if _has_wave(steps) else []
    rest = [step for step in steps if not beside or step.kind not in BESIDE]
    found: list[Wave] = []
    serial: list[Step] = []
    for run in _runs(rest):
        if len(run) == 1:
            serial += run
            continue
        found += [[[one]] for one in fuse.runs(serial)]
        serial = []
        parts = spread(units(run), AT_ONCE)
        found.append([fuse.runs([s for u in part for s in u]) for part in parts])
    found += [[[one]] for one in fuse.runs(serial)]
    if beside:
        last = max(i for i, wave in enumerate(found) if len(wave) > 1)
        found[min(last + 1, len(found) - 1)].append(fuse.runs(beside))
    return found


def _has_wave(steps: list[Placed]) -> bool:
    """True when some consecutive steps share a group (a wave at once)."""
    return any(run[0].group and len(run) > 1 for run in _runs(steps))

