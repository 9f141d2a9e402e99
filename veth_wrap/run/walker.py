"""The walker that runs a plan: in order, undoing what it did, newest first, on failure."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from veth_wrap.errors import CommandFailed, Interrupted, VethwrapError
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.steps import BATCHES_AT_ONCE, Op, Plan, Step

Progress = Callable[[int], None]  # called with the number of ops just finished
PARALLEL = BATCHES_AT_ONCE  # independent batches at once


@dataclass
class Outcome:
    """What a run of a plan did."""

    done: list[Op] = field(default_factory=list)
    undo_failures: list[str] = field(default_factory=list)


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
            for batch in _waves(plan.steps):
                _run_wave(batch, runner, outcome, progress)
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
    return outcome


def _waves(steps: list[Step]) -> Iterator[list[Step]]:
    """Consecutive steps that share a group run together; the rest one by one."""
    wave: list[Step] = []
    for step in steps:
        if wave and (not step.group or step.group != wave[0].group):
            yield wave
            wave = []
        wave.append(step)
    if wave:
        yield wave


def _run_wave(wave: list[Step], runner: Runner, outcome: Outcome,
              progress: Optional[Progress]) -> None:
    if len(wave) == 1:
        _run_step(wave[0], runner, outcome, progress)
        return
    first_error: list[VethwrapError] = []
    with ThreadPoolExecutor(PARALLEL) as pool:
        for error in pool.map(lambda s: _try_step(s, runner, outcome, progress), wave):
            if error and not first_error:
                first_error.append(error)
    if first_error:
        raise first_error[0]


def _try_step(step: Step, runner: Runner, outcome: Outcome, progress) -> Optional[VethwrapError]:
    try:
        _run_step(step, runner, outcome, progress)
    except VethwrapError as error:
        return error
    return None


def _run_step(step: Step, runner: Runner, outcome: Outcome, progress) -> None:
    try:
        runner.run(step.argv(), stdin=step.stdin())
    except CommandFailed as error:
        done = error.batch_done if step.batched else 0
        # Without a line number (killed, say) nothing tells how far it got: undo it all.
        outcome.done.extend(step.ops[: len(step.ops) if done is None else done])
        raise
    outcome.done.extend(step.ops)
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
        if last and (last.netns, last.program) == (op.undo_netns, op.undo_program):
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
