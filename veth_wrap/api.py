"""The library behind the CLI: plan, apply, verify and destroy labs from Python."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Optional

from veth_wrap import lifecycle
from veth_wrap.check.verify import Report, verify
from veth_wrap.compile import hosts
from veth_wrap.compile.create import create_plan
from veth_wrap.compile.destroy import destroy_plan
from veth_wrap.errors import VerificationFailed
from veth_wrap.kernel import hostsfiles, inventory, state
from veth_wrap.lifecycle import (  # noqa: F401
    Service,
    Teardown,
    capture_argv,
    exec_in,
    log_path,
    processes,
    start,
    stop,
)
from veth_wrap.model.topology import Lab
from veth_wrap.run.lock import locked
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.run.walker import Progress, apply
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
        return with_hosts(create_plan(lab, {}), lab, {})
    runner = runner or default_runner()
    existing = set(state.list_netns(runner))
    present = [ns for ns in lab.namespaces() if ns in existing]
    facts = state.read(present, runner, forwarding=lab.forwarding)
    root = state.read_root(runner) if any(e.netns is None for e in lab.ends()) else None
    return with_hosts(create_plan(lab, facts, root), lab, hostsfiles.read(lab.namespaces()))


def with_hosts(steps: Plan, lab: Lab, found: dict) -> Plan:
    """The plan followed by the steps that write the lab's hosts files (lab names resolve)."""
    names = hosts.write_plan(lab, found)
    return Plan(steps.steps + names.steps, steps.notes + names.notes)


def create(lab: Lab, runner: Optional[Runner] = None, check: bool = True,
           progress: Optional[Progress] = None) -> Built:
    """Build lab (only what is missing), then verify it; raise VerificationFailed if it fails."""
    runner = runner or default_runner()
    with locked():
        steps = plan(lab, runner)
        if not steps.empty:
            apply(steps, runner, progress)
    built = Built(lab, steps, notes=[n for n in steps.notes if hosts.FOREIGN in n])
    if check:
        built.report = verify(lab, runner)
        if not built.report.ok:
            failed = built.report.unreached[0] if built.report.unreached else None
            raise VerificationFailed(
                f"lab {lab.name} was built but does not verify: {built.report.problems[0]}",
                f"it is left in place: see 'vethwrap diagnose {_first_problem_args(lab)}', "
                f"remove it with 'vethwrap destroy --lab {lab.name}'", unreached=failed)
    return built


def _first_problem_args(lab: Lab) -> str:
    first, second = lab.members[0], lab.members[1]
    return f"{first} {lab.address_of(second, first) or second}"


def destroy_targets(namespaces: Iterable[str] = (), lab: Optional[str] = None,
                    everything: bool = False, runner: Optional[Runner] = None) -> Teardown:
    """The plan that removes vethwrap's objects for namespaces, one lab, or all labs.

    It also holds the processes that must stop first: those in every namespace that goes,
    and in namespaces of the labs that go which have lost their name (`ip netns del` while
    a process ran in them).
    """
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
    return lifecycle.complete(result, targets, facts, views, lab, everything, runner)


def destroy(namespaces: Iterable[str] = (), lab: Optional[str] = None, everything: bool = False,
            runner: Optional[Runner] = None, progress: Optional[Progress] = None,
            grace: float = lifecycle.GRACE) -> Teardown:
    """Stop every process in what goes, then remove vethwrap's objects.

    A namespace that existed before stays, less vethwrap's links, and its processes run on.
    """
    runner = runner or default_runner()
    with locked():
        steps = destroy_targets(namespaces, lab, everything, runner)
        with lifecycle.pinned(steps):
            steps.stopped = lifecycle.stop_inside(steps.doomed, grace)
            apply(steps, runner, progress)
            # a process that entered a namespace meanwhile keeps it alive, nameless: end it
            steps.stopped += lifecycle.stop_inside(steps.doomed, grace)
    return steps
