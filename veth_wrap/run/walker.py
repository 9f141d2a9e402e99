"""The walker that runs a plan: in order, undoing what it did, newest first, on failure."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from veth_wrap.errors import CommandFailed, Interrupted, VethwrapError
from veth_wrap.run import fuse
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.steps import BATCHES_AT_ONCE, Op, Plan, Step, spread

Progress = Callable[[int], None]  # called with the number of ops just finished
PARALLEL = BATCHES_AT_ONCE  # independent batches at once


@dataclass
class Outcome:
    """What a run of a plan did."""

    done: list[Op] = field(default_factory=list)
    undo_failures: list[str] = field(default_factory=list)
    read: list[tuple[Step, str]] = field(default_factory=list)  # steps with read-back lines


@contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM until the running step ends, so that rollback sees whole steps."""
    caught: list[int] = []
    previous = {}

    def handler(signum, _frame):
        caught.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield caught
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def apply(plan: Plan, runner: Optional[Runner] = None, progress: Optional[Progress] = None
          ) -> Outcome:
    """Run every step; on any failure or signal roll back and re-raise."""
    runner = runner or default_runner()
    outcome = Outcome()
    with deferred_signals() as caught:
        try:
            for wave in _waves(plan.steps):
                _run_wave(wave, runner, outcome, progress)
                if caught:
                    raise Interrupted(caught[0])
        except VethwrapError as error:
            outcome.undo_failures = rollback(outcome.done, runner)
            error.undo_failures = outcome.undo_failures
            if outcome.undo_failures:  # say so: the kernel is not as before
                error.message += (f"; rollback failed for {len(outcome.undo_failures)} "
                                  f"command(s), first: {outcome.undo_failures[0]}")
                error.hint = "remove what is left with 'vethwrap destroy NAMESPACE...'"
            raise
        except Exception:  # a bug of ours half-way: the kernel still goes back as it was
            outcome.undo_failures = rollback(outcome.done, runner)
            raise
    return outcome


def _waves(steps: list[Step]) -> Iterator[list[list[Step]]]:
    """Runs of steps for one process each (run/fuse), grouped into waves run at once.

    Consecutive steps that share a group are independent: they go as up to PARALLEL runs
    at once. The others go in order, consecutive `ip` steps in one process.
    """
    serial: list[Step] = []
    index = 0
    while index < len(steps):
        group = steps[index].group
        end = index + 1
        while group and end < len(steps) and steps[end].group == group:
            end += 1
        if end - index == 1:
            serial.append(steps[index])
        else:
            yield from ([run] for run in fuse.runs(serial))
            serial = []
            units = spread(_units(steps[index:end]), PARALLEL)
            yield [run for part in units for run in fuse.runs([s for u in part for s in u])]
        index = end
    yield from ([run] for run in fuse.runs(serial))


def _units(steps: list[Step]) -> list[list[Step]]:
    """steps cut where a wave may be cut: a root step stays with the namespace step after it
    (the namespace it adds is where that step runs)."""
    units: list[list[Step]] = []
    for step in steps:
        if units and units[-1][-1].netns is None and step.netns is not None:
            units[-1].append(step)
        else:
            units.append([step])
    return units


def _run_wave(wave: list[list[Step]], runner: Runner, outcome: Outcome,
              progress: Optional[Progress]) -> None:
    if len(wave) == 1:
        _run_steps(wave[0], runner, outcome, progress)
        return
    from concurrent.futures import ThreadPoolExecutor  # only big labs run steps at once

    first_error: list[VethwrapError] = []
    with ThreadPoolExecutor(PARALLEL) as pool:
        for error in pool.map(lambda run: _try_steps(run, runner, outcome, progress), wave):
            if error and not first_error:
                first_error.append(error)
    if first_error:
        raise first_error[0]


def _try_steps(run: list[Step], runner: Runner, outcome: Outcome,
               progress) -> Optional[VethwrapError]:
    try:
        _run_steps(run, runner, outcome, progress)
    except VethwrapError as error:
        return error
    return None


def _run_steps(run: list[Step], runner: Runner, outcome: Outcome, progress) -> None:
    """One step as itself, or several in one root batch (run/fuse)."""
    if len(run) == 1:
        _run_step(run[0], runner, outcome, progress)
        return
    batch = fuse.fused(run)
    try:
        result = runner.run(batch.argv(), stdin=batch.stdin())
    except CommandFailed as error:
        done, own = batch.failure(error)
        outcome.done.extend(done)
        raise own from None
    finally:
        batch.close()
    ops = batch.ops()
    outcome.done.extend(ops)
    if any(step.reads for step in run):  # every read line prints, in the order they ran
        outcome.read.append((Step(ops), result.stdout))
    if progress:
        progress(len(ops))


def _run_step(step: Step, runner: Runner, outcome: Outcome, progress) -> None:
    try:
        result = runner.run(step.argv(), stdin=step.stdin())
    except CommandFailed as error:
        done = error.batch_done if step.batched else 0
        # Without a line number it ran none, unless killed: then nothing tells how far it
        # got, so undo it all.
        if done is None:
            done = len(step.ops) if error.killed else 0
        outcome.done.extend(step.ops[:done])
        raise
    outcome.done.extend(step.ops)
    if step.reads:
        outcome.read.append((step, result.stdout))
    if progress:
        progress(len(step.ops))


def rollback(done: list[Op], runner: Optional[Runner] = None) -> list[str]:
    """Undo done ops newest first, skipping what a deleted object took with it."""
    runner = runner or default_runner()
    removed = _removed_by_undo(done)
    steps: list[Step] = []
    for op in reversed(done):
        if not op.undo or _moot(op, removed):
            continue
        last = steps[-1] if steps else None
        if op.undo_program not in ("ip", "tc"):  # a file step's undo: a command of its own
            steps.append(Step((Op(op.undo),), program=op.undo_program))
        elif last and (last.netns, last.program) == (op.undo_netns, op.undo_program):
            steps[-1] = Step(last.ops + (Op(op.undo),), op.undo_netns, op.undo_program,
                             force=True)
        else:
            steps.append(Step((Op(op.undo),), op.undo_netns, op.undo_program, force=True))
    failures = []
    for step in steps:
        try:
            runner.run(step.argv(), stdin=step.stdin())
        except CommandFailed as error:
            failures.append(error.line())
    return failures


def _removed_by_undo(done: list[Op]) -> set:
    removed = set()
    for op in done:
        if op.undo:
            removed.update(op.creates)
    return removed


def _moot(op: Op, removed: set) -> bool:
    """True when every object in gone_with is removed by the rollback anyway."""
    if not op.gone_with:
        return False
    return all(key in removed or ("netns", key[1]) in removed for key in op.gone_with
               if key is not None)
