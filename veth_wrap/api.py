"""The library behind the CLI: plan, apply, verify and destroy labs from Python."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from veth_wrap.check.verify import Report, verify
from veth_wrap.compile.create import create_plan
from veth_wrap.compile.destroy import destroy_plan
from veth_wrap.errors import CommandFailed, VerificationFailed
from veth_wrap.kernel import inventory, state
from veth_wrap.model.topology import Lab
from veth_wrap.run.lock import locked
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.run.walker import Outcome, Progress, apply, rollback
from veth_wrap.steps import Plan


@dataclass
class Built:
    """The result of `create`: what changed and what verification found."""

    lab: Lab
    plan: Plan
    report: Optional[Report] = None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when any command ran."""
        return not self.plan.empty


def plan(lab: Lab, runner: Optional[Runner] = None) -> Plan:
    """The plan that builds lab from what the kernel holds now (from nothing when unreadable)."""
    if os.geteuid() != 0:
        return create_plan(lab, {})
    runner = runner or default_runner()
    existing = set(state.list_netns(runner))
    present = [ns for ns in lab.namespaces() if ns in existing]
    facts = state.read(present, runner, forwarding=lab.forwarding)
    root = state.read_root(runner) if any(e.netns is None for e in lab.ends()) else None
    return create_plan(lab, facts, root)


def create(lab: Lab, runner: Optional[Runner] = None, check: bool = True,
           progress: Optional[Progress] = None, planner: Callable = plan) -> Built:
    """Build lab (only what is missing), then verify it; raise VerificationFailed if it fails.

    Planning, applying and verifying hold the lock throughout: a second create waits and
    finds the lab built and verified; a destroy waits until this one has verified. A
    verification that cannot run (a read fails) never showed the lab to work: what this run
    built is rolled back, as after a failed step. A lab that is read back and does not pass
    traffic stays in place for diagnosis. planner: plan (create) or update_plan (up).
    """
    runner = runner or default_runner()
    with locked():
        steps = planner(lab, runner)
        outcome = apply(steps, runner, progress) if not steps.empty else Outcome()
        built = Built(lab, steps)
        if check:
            try:
                built.report = verify(lab, runner)
            except CommandFailed as error:
                raise _verify_could_not_run(error, outcome, runner) from None
    if check and not built.report.ok:
        failed = built.report.unreached[0] if built.report.unreached else None
        raise VerificationFailed(
            f"lab {lab.name} was built but does not verify: {built.report.problems[0]}",
            f"it is left in place: see 'vethwrap diagnose {_first_problem_args(lab)}', "
            f"remove it with 'vethwrap destroy --lab {lab.name}'", unreached=failed)
    return built


def _verify_could_not_run(error: CommandFailed, outcome: Outcome, runner: Runner
                          ) -> CommandFailed:
    """Roll back what this run built and say so on the error's one line."""
    if not outcome.done:
        error.message += "; verification could not run (this run changed nothing)"
        return error
    failures = rollback(outcome.done, runner)
    error.undo_failures = failures
    if failures:
        error.message += (f"; verification could not run, and rolling back failed for "
                          f"{len(failures)} command(s), first: {failures[0]}")
        error.hint = "remove what is left with 'vethwrap destroy NAMESPACE...'"
    else:
        error.message += "; verification could not run, so what this run built was rolled back"
    return error


def _first_problem_args(lab: Lab) -> str:
    first, second = lab.members[0], lab.members[1]
    return f"{first} {lab.address_of(second, first) or second}"


def destroy_targets(namespaces: Iterable[str] = (), lab: Optional[str] = None,
                    everything: bool = False, runner: Optional[Runner] = None) -> Plan:
    """The plan that removes vethwrap's objects for namespaces, one lab, or all labs."""
    runner = runner or default_runner()
    wanted = None if (lab or everything) else list(namespaces)
    facts, root = inventory.scan(wanted, runner, routes=False)
    views = inventory.labs(facts, root)
    if everything:
        targets = [ns for view in views.values() for ns in view.members + [view.hub] if ns]
    elif lab:
        view = views.get(lab)
        targets = (view.members + ([view.hub] if view.hub else [])) if view else []
    else:
        targets = list(namespaces)
    result = destroy_plan(targets, facts, views, root)
    if lab and lab not in views:
        result.notes.append(f"lab {lab}: nothing of it in the kernel, nothing to do")
    return result


def destroy(namespaces: Iterable[str] = (), lab: Optional[str] = None, everything: bool = False,
            runner: Optional[Runner] = None, progress: Optional[Progress] = None) -> Plan:
    """Remove vethwrap's objects; a namespace that existed before stays, less vethwrap's links."""
    runner = runner or default_runner()
    with locked():
        steps = destroy_targets(namespaces, lab, everything, runner)
        apply(steps, runner, progress)
    return steps
