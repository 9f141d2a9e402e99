"""The walker that runs a plan: in order, undoing what it did, newest first, on failure.

How the plan's steps become processes is run/schedule's decision; this is the transaction.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator, Optional

from veth_wrap.errors import CommandFailed, Interrupted, VethwrapError
from veth_wrap.run import commands, processes, schedule
from veth_wrap.run.processes import Outcome, Progress
from veth_wrap.run.reads import Reads
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.steps import FILE_KINDS, Op, Plan, Step

__all__ = ["Outcome", "Progress", "apply", "deferred_signals", "rollback", "script"]


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


def apply(plan: Plan, runner: Optional[Runner] = None, progress: Optional[Progress] = None,
          reads: Optional[Reads] = None) -> Outcome:
    """Run every step; on any failure or signal roll back and re-raise.

    reads: what to read back once the plan ran; what it printed is in Outcome.read.
    """
    runner = runner or default_runner()
    outcome = Outcome()
    with deferred_signals() as caught:
        try:
            for wave in schedule.waves(plan, reads):
                processes.run_wave(wave, runner, outcome, progress)
                if caught:
                    raise Interrupted(caught[0])
        except VethwrapError as error:
            outcome.undo_failures = rollback(outcome.done, runner)
            _tell(error, outcome.undo_failures)
            raise
        except Exception:  # a bug of ours half-way: the kernel still goes back as it was
            outcome.undo_failures = rollback(outcome.done, runner)
            raise
    return outcome


def _tell(error: VethwrapError, failures: list[str]) -> None:
    """Say on the error's line that rollback failed: the kernel is not as before."""
    error.undo_failures = failures
    if failures:
        error.message += (f"; rollback failed for {len(failures)} "
                          f"command(s), first: {failures[0]}")
        error.hint = "remove what is left with 'vethwrap destroy NAMESPACE...'"


def rollback(done: list[Op], runner: Optional[Runner] = None) -> list[str]:
    """Undo done ops newest first, skipping what a deleted object took with it; return the
    undos that failed (each as its one line)."""
    runner = runner or default_runner()
    failures = []
    for step in _undo_steps(done):
        try:
            # an undo that fails (its object went another way) must not stop the others
            processes.start(step, runner, force=step.kind not in FILE_KINDS)
        except CommandFailed as error:
            failures.append(error.line())
    return failures


def _undo_steps(done: list[Op]) -> list[Step]:
    """The undos of done ops, newest first: consecutive lines of one program in one
    namespace go in one `-force -batch`, a file step's undo as a step of its own."""
    removed = {key for op in done if op.undo for key in op.creates}
    steps: list[Step] = []
    for op in reversed(done):
        if not op.undo or _moot(op, removed):
            continue
        undo = Op(op.undo_kind, op.undo)
        last = steps[-1] if steps else None
        if op.undo_program not in ("ip", "tc"):  # a file step's undo: a command of its own
            steps.append(Step((undo,), program=op.undo_program))
        elif last and (last.netns, last.program) == (op.undo_netns, op.undo_program):
            steps[-1] = Step(last.ops + (undo,), op.undo_netns, op.undo_program)
        else:
            steps.append(Step((undo,), op.undo_netns, op.undo_program))
    return steps


def _moot(op: Op, removed: set) -> bool:
    """True when every object in gone_with is removed by the rollback anyway."""
    if not op.gone_with:
        return False
    return all(key in removed or ("netns", key[1]) in removed for key in op.gone_with
               if key is not None)


def script(plan: Plan, header: str = "") -> list[str]:
    """The shell script of what apply runs for plan (a dry run), every word quoted."""
    return commands.script(schedule.shown(plan), header)
