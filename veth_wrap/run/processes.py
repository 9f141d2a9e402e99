"""A schedule's waves as processes: lanes at once in threads, each run of steps one process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from veth_wrap.errors import CommandFailed, VethwrapError
from veth_wrap.run import commands, fuse
from veth_wrap.run.runner import Result, Runner
from veth_wrap.run.schedule import Lane, Wave
from veth_wrap.steps import FILE_KINDS, Op, Step

Progress = Callable[[int], None]  # called with the number of ops just finished


@dataclass
class Outcome:
    """What a run of a plan did."""

    done: list[Op] = field(default_factory=list)
    undo_failures: list[str] = field(default_factory=list)
    read: list[tuple[Step, str]] = field(default_factory=list)  # steps with read-back lines


def start(step: Step, runner: Runner, force: bool = False) -> Result:
    """Run one step: a file step by vethwrap itself (its kind says which), else a process
    (force: one that goes on past a failing line, as a rollback does)."""
    argv, stdin = commands.argv(step, force), commands.stdin(step, force)
    if step.kind in FILE_KINDS:
        return runner.run_file(step.kind, argv, stdin)
    return runner.run(argv, stdin=stdin)


def run_wave(wave: Wave, runner: Runner, outcome: Outcome,
             progress: Optional[Progress]) -> None:
    """Run a wave's lanes at once; raise the first lane's error once all have ended."""
    if len(wave) == 1 and len(wave[0]) == 1:
        _run_steps(wave[0][0], runner, outcome, progress)
        return
    from concurrent.futures import ThreadPoolExecutor  # only big labs run steps at once

    first_error: list[VethwrapError] = []
    with ThreadPoolExecutor(len(wave)) as pool:
        for error in pool.map(lambda lane: _try_lane(lane, runner, outcome, progress), wave):
            if error and not first_error:
                first_error.append(error)
    if first_error:
        raise first_error[0]


def _try_lane(lane: Lane, runner: Runner, outcome: Outcome,
              progress) -> Optional[VethwrapError]:
    """Run a lane's runs in order, stopping at the first that fails (its error returned)."""
    try:
        for run in lane:
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
    if any(commands.reads(step) for step in run):  # every read line prints, in the order they ran
        outcome.read.append((Step(ops), result.stdout))
    if progress:
        progress(len(ops))


def _run_step(step: Step, runner: Runner, outcome: Outcome, progress) -> None:
    try:
        result = start(step, runner)
    except CommandFailed as error:
        done = error.lines_done if commands.batched(step) else 0
        # Without a line number it ran none, unless killed: then nothing tells how far it
        # got, so undo it all.
        if done is None:
            done = len(step.ops) if error.killed else 0
        outcome.done.extend(step.ops[:done])
        raise
    outcome.done.extend(step.ops)
    if commands.reads(step):
        outcome.read.append((step, result.stdout))
    if progress:
        progress(len(step.ops))
