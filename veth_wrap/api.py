"""The library behind the CLI: plan, apply, verify and destroy labs, change live links."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from veth_wrap.check import readback
from veth_wrap.check.verify import Report, reads_for, verify
from veth_wrap.compile import namefiles
from veth_wrap.compile.create import create_plan
from veth_wrap.compile.destroy import Teardown, destroy_plan, teardown_of
from veth_wrap.errors import CommandFailed, NoSuchNamespace, VerificationFailed, VethwrapError
from veth_wrap.kernel import caps, inventory, nameread, state
from veth_wrap.lifecycle import teardown as lifecycle
from veth_wrap.lifecycle.inlab import (  # noqa: F401 (the services' API, re-exported)
    alive,
    capture_argv,
    exec_in,
    limits_of,
    open_log,
    processes,
    restart,
    run_execs,
    start_spec,
    stop,
)
from veth_wrap.lifecycle.service import Service, start  # noqa: F401
from veth_wrap.model.linkopts import LinkOpts
from veth_wrap.model.procfacts import LOG_ROOT
from veth_wrap.model.topology import Lab
from veth_wrap.run.lock import locked
from veth_wrap.run.runner import Runner, default_runner, require
from veth_wrap.run.transaction import Outcome, Progress, apply, rollback
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


def netem_for(lab: Lab) -> bool:
    """Whether the kernel has sch_netem, asked only when a link option needs it."""
    if any(end.opts and end.opts.wants_netem for end in lab.ends()):
        return caps.has_netem()
    return True


def plan(lab: Lab, runner: Optional[Runner] = None) -> Plan:
    """The plan that builds lab from what the kernel holds now (from nothing when unreadable)."""
    if not caps.privileged():
        return with_hosts(create_plan(lab, {}, netem=netem_for(lab), host_ipv6=caps.has_ipv6()),
                          lab, {})
    runner = runner or default_runner()
    existing = set(state.list_netns(runner))
    present = [ns for ns in lab.namespaces() if ns in existing]
    facts = state.read(present, runner, forwarding=lab.forwarding)
    root = state.read_root(runner) if any(e.netns is None for e in lab.ends()) else None
    steps = create_plan(lab, facts, root, netem_for(lab), caps.has_ipv6())
    _refuse_other_options(lab, facts, runner)
    return with_hosts(steps, lab, nameread.read(lab.namespaces()),
                      stale=_stale(lab, existing, runner))


def _refuse_other_options(lab: Lab, facts: dict, runner: Runner) -> None:
    """A lab already built, asked with other addresses, MTU, MAC or impairments: exit 2."""
    from veth_wrap.compile import drift

    if not any(lab.name in st.labs() for st in facts.values()):
        return
    asks = any(end.opts and end.opts.impaired for end in lab.ends())
    held = _impairments([ns for ns in lab.namespaces() if ns in facts], runner) if asks else {}
    drift.refuse(lab, drift.differences(lab, facts, held))


def _stale(lab: Lab, existing: Iterable[str], runner: Runner) -> list:
    """Name files of namespaces that are gone, other than the lab's own (rewritten anyway)."""
    return [f for f in nameread.stale(existing, runner) if f.netns not in lab.namespaces()]


def with_hosts(steps: Plan, lab: Lab, found: dict, dropped: Iterable = (),
               stale: Iterable = ()) -> Plan:
    """The plan followed by the steps that write the lab's name files (lab names resolve),
    and remove those of namespaces an edited lab dropped, and of namespaces that are gone."""
    names = namefiles.write_plan(lab, found)
    names.steps += namefiles.removal_steps(dropped) if dropped else []
    names.steps += namefiles.stale_steps(stale)
    return Plan(steps.steps + names.steps, steps.notes + names.notes,
                neighbour_warnings(lab))


def neighbour_warnings(lab: Lab) -> list[str]:
    """Warnings for a lab whose neighbour entries can reach the kernel's table limit."""
    from veth_wrap.model.neighbours import warning

    tables = [caps.neighbour_table(version) for version in lab.versions()]
    return [text for text in (warning(lab, t) for t in tables if t) if text]


def create(lab: Lab, runner: Optional[Runner] = None, check: bool = True,
           progress: Optional[Progress] = None, planner: Optional[Callable] = None) -> Built:
    """Build lab (only what is missing), then verify it; raise VerificationFailed if it fails.

    Planning, applying and verifying hold the lock throughout: a second create waits and
    finds the lab built and verified; a destroy waits until this one has verified. A
    verification that cannot run (a read fails) never showed the lab to work: what this run
    built is rolled back, as after a failed step. A lab that is read back and does not pass
    traffic stays in place for diagnosis. planner: plan (create) or update_plan (up).
    """
    runner = runner or default_runner()
    if lab.uplinks:
        require("pasta")  # named with its package before anything changes
    with locked():
        steps = (planner or plan)(lab, runner)
        lifecycle.stop_in_dropped(steps)  # up of a file that drops namespaces: as destroy does
        # the schedule reads back what verification looks at first, with the build
        try:
            outcome = (apply(steps, runner, progress, reads_for(lab) if check else None)
                       if not steps.empty else Outcome())
        except VethwrapError:  # rolled back: a gateway whose namespace went ends with it
            lifecycle.end_stray_gateways([uplink.netns for uplink in lab.uplinks])
            raise
        built = Built(lab, steps, notes=steps.warnings + [n for n in steps.notes
                                                          if namefiles.FOREIGN in n])
        if check:
            try:
                built.report = verify(lab, runner, seen=readback.seen(outcome.read))
            except CommandFailed as error:
                raise _verify_could_not_run(error, outcome, runner) from None
    if check and not built.report.ok:
        raise _does_not_verify(lab, built.report)
    return built


def _does_not_verify(lab: Lab, report: Report) -> VerificationFailed:
    """The lab was read back and does not pass traffic: it stays, for diagnosis."""
    failed = report.unreached[0] if report.unreached else None
    impaired = any(end.opts and end.opts.impaired for end in lab.ends())
    maybe = ("the link options (--loss, --delay) may drop or outlast the check's pings: "
             "create with --no-verify to skip it; " if impaired else "")
    return VerificationFailed(
        f"lab {lab.name} was built but does not verify: {report.problems[0]}",
        f"{maybe}it is left in place: see 'vethwrap diagnose {_first_problem_args(lab)}', "
        f"remove it with 'vethwrap destroy --lab {lab.name}'", unreached=failed)


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


def update_plan(lab: Lab, runner: Optional[Runner] = None) -> Plan:
    """The plan that makes the kernel hold exactly lab: removals first, then additions."""
    from veth_wrap.compile.update import update_plan as compile_update

    runner = runner or default_runner()
    if not caps.privileged():
        return plan(lab, runner)
    everything, root = inventory.scan(None, runner, forwarding=lab.forwarding)
    ids = state.netns_ids(list(everything), runner)
    steps = compile_update(lab, everything, root, ids, netem_for(lab), caps.has_ipv6())
    view = inventory.labs(everything, root).get(lab.name)
    dropped = [ns for ns in view.created if ns not in lab.namespaces()] if view else []
    return with_hosts(steps, lab, nameread.read(lab.namespaces()),
                      nameread.read(dropped).values(), _stale(lab, everything, runner))


def update(lab: Lab, runner: Optional[Runner] = None, check: bool = True,
           progress: Optional[Progress] = None) -> Built:
    """Make the kernel hold exactly lab (adding and removing), then verify it, as create does.

    Then the exec commands of an imported file (containerlab, Kathara) run, in the
    namespaces this run made: their addresses and routes come after the links.
    """
    if "exec" not in lab.extra:
        return create(lab, runner, check, progress, planner=update_plan)
    # the file's own commands address the ends: probes wait for them; the links are read back
    built = create(lab, runner, False, progress, planner=update_plan)
    made = {key[1] for step in built.plan.steps for op in step.ops for key in op.creates
            if key[0] == "netns"}
    built.notes += run_execs(lab.extra["exec"], made)
    if check:
        built.report = verify(lab, runner or default_runner(), reach=False)
        if not built.report.ok:
            raise _does_not_verify(lab, built.report)
    return built


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
    hubs = inventory.portless_hubs(wanted, facts, runner) if wanted is not None else []
    views = inventory.labs(facts, root)
    if everything:
        targets = [ns for view in views.values() for ns in view.namespaces()]
    elif lab:
        view = views.get(lab)
        targets = view.namespaces() if view else []
    else:
        targets = list(namespaces) + hubs
    named = set(views) if everything else {lab} if lab else set()
    result = destroy_plan(targets, facts, views, root, named)
    result.steps += _partitions_kept(targets, result.namespaces, runner)
    if lab and lab not in views:
        result.notes.append(f"lab {lab}: nothing of it in the kernel, nothing to do")
    return lifecycle.complete(result, targets, facts, views, lab, everything, runner)


def _partitions_kept(targets: list[str], doomed: list[str], runner: Runner) -> list:
    """Removal of vethwrap's partition tables in namespaces that stay (deleted ones take
    theirs with them)."""
    from veth_wrap.compile.faults import heal_plan
    from veth_wrap.kernel import faultread

    kept = [ns for ns in targets if ns not in doomed and ns in state.list_netns(runner)]
    return heal_plan(faultread.tables(kept, runner).values()).steps if kept else []


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
            steps.stopped = lifecycle.stop_inside(steps.doomed, grace, steps.cgroups)
            apply(steps, runner, progress)
            # after their taps went (ending one first would take its tap with it)
            steps.stopped += lifecycle.end_gateways(steps.gateways, grace)
            # a process that entered a namespace meanwhile keeps it alive, nameless: end it
            steps.stopped += lifecycle.stop_inside(steps.doomed, grace)
    return steps


def destroy_built(built: Built, runner: Optional[Runner] = None,
                  progress: Optional[Progress] = None) -> Teardown:
    """Remove a lab this process created: by name when its plan made every namespace of it.

    Nothing is read again (the fixture path); a namespace gone meanwhile, or a lab in
    namespaces that were there before, falls back to `destroy`, which reads the kernel.
    """
    from veth_wrap.kernel import procs

    runner = runner or default_runner()
    namespaces = built.lab.namespaces()
    fast = teardown_of(built.plan, namespaces)
    if fast is not None:
        logs, links = nameread.present([f"{LOG_ROOT}/{built.lab.name}"])
        fast.notes += [f"{link} is a symbolic link: left as it is" for link in links]
        fast.steps += namefiles.removal_steps(nameread.read(namespaces).values(), logs)
        fast.doomed = procs.inodes(namespaces)
        fast.cgroups = lifecycle.service_groups([built.lab.name], namespaces)
        try:
            with locked(), lifecycle.pinned(fast):
                fast.stopped = lifecycle.stop_inside(fast.doomed, lifecycle.GRACE, fast.cgroups)
                apply(fast, runner, progress)
            return fast
        except CommandFailed:
            pass
    return destroy(namespaces, runner=runner, progress=progress)


def link_plan(namespace: Optional[str], ifname: Optional[str], opts: Optional[LinkOpts],
              clear: bool, runner: Optional[Runner] = None, lab: Optional[str] = None) -> Plan:
    """The plan that changes one live vethwrap end (and its peer's MTU), or every end of a lab."""
    from veth_wrap.compile.live import lab_ends, live_plan

    runner = runner or default_runner()
    facts, root = inventory.scan(None, runner, routes=False)
    ends = lab_ends(facts, lab) if lab is not None else [(namespace, ifname)]
    if not ends:
        raise inventory.no_such_lab(lab)
    wants = opts is not None and opts.wants_netem
    netem = caps.has_netem() if wants else True
    held = _impairments([ns for ns, _ in ends], runner)
    plan = Plan()
    for ns, name in ends:
        end = _live_end(facts, root, ns, name, held.get(ns, {}).get(name, {}), lab is None)
        part = live_plan(end, opts, clear, netem)
        plan.steps += part.steps
    return plan


def _impairments(namespaces: list[str], runner: Runner) -> dict:
    from veth_wrap.kernel.tcread import read_all

    return read_all(list(dict.fromkeys(namespaces)), runner)


def _live_end(facts: dict, root, namespace: str, ifname: str, held: dict, with_peer: bool):
    """One end as read, refused unless it is a vethwrap veth end; its peer for the MTU."""
    from veth_wrap.compile.live import End, check_end

    if namespace not in facts:
        raise NoSuchNamespace(namespace)
    link = check_end(namespace, ifname, facts[namespace].links.get(ifname))
    peer = inventory.find_peer(link, namespace, facts, root) if with_peer else None
    far = (peer[0], (facts[peer[0]] if peer[0] else root).links[peer[1]]) if peer else None
    return End(namespace, link, held, far)


def link_set(namespace: Optional[str], ifname: Optional[str], opts: Optional[LinkOpts],
             clear: bool, runner: Optional[Runner] = None, lab: Optional[str] = None
             ) -> list[dict]:
    """Change ends through the walker (rolled back on failure); return what each now holds."""
    runner = runner or default_runner()
    with locked():
        plan = link_plan(namespace, ifname, opts, clear, runner, lab)
        done = apply(plan, runner)
        try:
            return [describe(ns, name, runner) for ns, name in _changed(plan, namespace, ifname)]
        except VethwrapError as error:  # not read back, not shown to hold: undo it all
            error.undo_failures = rollback(done.done, runner)
            raise


def _changed(plan: Plan, namespace: Optional[str], ifname: Optional[str]) -> list[tuple]:
    """The (namespace, interface) ends a link plan changes, in order."""
    if namespace is not None:
        return [(namespace, ifname)]
    found = [(step.netns, op.target) for step in plan.steps for op in step.ops]
    return list(dict.fromkeys(found))


def describe(namespace: str, ifname: str, runner: Optional[Runner] = None) -> dict:
    """One end as the kernel holds it now: ifindex, MTU, MAC and impairments."""
    from veth_wrap.kernel.tcread import read_impairments

    runner = runner or default_runner()
    link = state.read([namespace], runner, routes=False)[namespace].links[ifname]
    return {"namespace": namespace, "interface": ifname, "ifindex": link.ifindex,
            "mtu": link.mtu, "mac": link.mac,
            "impairments": read_impairments(namespace, runner).get(ifname, {})}


def exec_argv(namespace: str, argv: list[str], runner: Optional[Runner] = None) -> list[str]:
    """The argv that runs a command inside an existing namespace, as `ip netns exec` does."""
    if namespace not in state.list_netns(runner or default_runner()):
        raise NoSuchNamespace(namespace)
    return ["ip", "netns", "exec", namespace, *argv]


def pingall(namespaces: Iterable[str] = (), lab: Optional[str] = None, count: int = 1,
            timeout: float = 1.0, version: Optional[int] = None,
            runner: Optional[Runner] = None) -> list:
    """Every member of each lab (or of lab, or only namespaces) probes every other member's
    address: the matrix as check.matrix.Cell items, empty when no lab is found. Raise
    UsageError when lab is named and the kernel does not hold it."""
    from veth_wrap.check.matrix import run_matrix

    only = list(namespaces) or None
    facts, root = inventory.scan(None if lab else only, runner, routes=False)
    views = inventory.labs(facts, root)
    if lab is not None:
        views = inventory.one_lab(views, lab)
    return run_matrix(facts, views, only, count, timeout, version)

