"""The walker that runs a plan: in order, undoing what it did, newest first, on failure."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from veth_wrap.errors import CommandFailed, Interrupted, VethwrapError
from veth_wrap.run import fuse
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.steps import BATCHES_AT_ONCE, BESIDE, Op, Plan, Step, spread

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


Lane = list[list[Step]]  # runs of steps for one process each, run one after the other


def _waves(steps: list[Step]) -> list[list[Lane]]:
    """Waves of lanes run at once; each lane's runs (run/fuse) go one after the other.

    Consecutive steps that share a group are independent: they go as up to PARALLEL lanes
    at once. The others go in order, consecutive `ip` steps in one process. Steps of the
    group BESIDE (the hosts files) go as a lane beside the run that follows the last wave
    at once (a bridge's ports, in one process inside the hub), when there is such a wave:
    their work then takes the core that run leaves idle.
    """
    beside = [step for step in steps if step.group == BESIDE] if _has_wave(steps) else []
    rest = [step for step in steps if not beside or step.group != BESIDE]
    waves: list[list[Lane]] = []
    serial: list[Step] = []
    index = 0
    while index < len(rest):
        group = rest[index].group
        end = index + 1
        while group and end < len(rest) and rest[end].group == group:
            end += 1
        if end - index == 1 or group == BESIDE:
            serial.extend(rest[index:end])
        else:
            waves += [[[run]] for run in fuse.runs(serial)]
            serial = []
            parts = spread(_units(rest[index:end]), PARALLEL)
            waves.append([fuse.runs([s for u in part for s in u]) for part in parts])
        index = end
    waves += [[[run]] for run in fuse.runs(serial)]
    if beside:
        last = max(i for i, wave in enumerate(waves) if len(wave) > 1)
        waves[min(last + 1, len(waves) - 1)].append(fuse.runs(beside))
    return waves


def _has_wave(steps: list[Step]) -> bool:
    """True when some consecutive steps share a group other than BESIDE (a wave at once)."""
    return any(one.group not in ("", BESIDE) and one.group == two.group
               for one, two in zip(steps, steps[1:]))


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


def _run_wave(wave: list[Lane], runner: Runner, outcome: Outcome,
              progress: Optional[Progress]) -> None:
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
