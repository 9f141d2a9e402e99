"""Partitions and heal: read the lab, compile the tables, run them with the walker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from veth_wrap import api
from veth_wrap.compile import faults as compile_faults
from veth_wrap.errors import CommandFailed, NoSuchNamespace, UsageError
from veth_wrap.kernel import faultread, inventory, state
from veth_wrap.model import faults as model
from veth_wrap.model import names
from veth_wrap.model.procfacts import Proc, Stopped
from veth_wrap.model.topology import Lab
from veth_wrap.run.lock import locked
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.run.transaction import apply
from veth_wrap.steps import Plan

STOP_GRACE = 5.0  # seconds a fault service has to undo its fault before SIGKILL


@dataclass
class Placed:
    """A partition as placed (or as a dry run would place it) and its plan."""

    partition: model.Partition
    plan: Plan

    def to_json(self) -> dict:
        """The stable JSON shape of `partition --json`."""
        return {"lab": self.partition.lab, "groups": [list(g) for g in self.partition.groups],
                "oneway": self.partition.oneway,
                "dropping": {ns: list(src) for ns, src in self.partition.unheard().items()}}


@dataclass
class Healed:
    """What heal removed: partition tables and the fault services it stopped."""

    tables: list[model.FaultTable] = field(default_factory=list)
    stopped: list[Stopped] = field(default_factory=list)
    plan: Plan = field(default_factory=Plan)
    services: list[Proc] = field(default_factory=list)  # to stop before the plan runs

    def to_json(self) -> dict:
        """The stable JSON shape of `heal --json`."""
        return {"tables": [t.to_json() for t in self.tables],
                "stopped": [s.to_json() for s in self.stopped]}


def resolve(name: str, lab: Optional[str], existing: Sequence[str]) -> str:
    """A namespace as named, or a lab's member by its short name (LAB-NAME); else refuse."""
    if name in existing:
        return name
    if lab and f"{lab}-{name}" in existing:
        return f"{lab}-{name}"
    raise NoSuchNamespace(name, f"{lab}-{name}" if lab else "")


def partition_plan(groups: Sequence[Sequence[str]], lab: Optional[str] = None,
                   oneway: bool = False, runner: Optional[Runner] = None,
                   built: Optional[Lab] = None, check: bool = True) -> Placed:
    """The plan that cuts the groups apart (short names resolve inside lab).

    built: the lab as a lab file describes it, for a lab over several hosts: its addresses
    come from the file, and only the namespaces on this host get their tables. check: read
    the tables in place first and refuse (the run leaves that to `create table`, and reads
    them only when a step fails)."""
    model.check_groups(groups)
    for name in (n for g in groups for n in g):
        names.check_netns(name)
    lab = names.check_lab(lab) if lab is not None else None
    runner = runner or default_runner()
    existing = state.list_netns(runner)
    if built is not None:
        return _from_file(groups, built, oneway, existing, runner, check)
    real = [[resolve(n, lab, existing) for n in g] for g in groups]
    model.check_groups(real)  # two short names may name one namespace
    flat = [n for g in real for n in g]
    facts = state.read(flat, runner, routes=False)
    lab = _common_lab(flat, facts, lab)
    part = model.Partition(lab, tuple(tuple(g) for g in real), oneway)
    addresses = {ns: [a for link in facts[ns].links.values() if link.ifname != "lo"
                      for a in link.addresses] for ns in flat}
    held = faultread.tables(part.unheard(), runner) if check else {}
    return Placed(part, compile_faults.partition_plan(part, addresses, held))


def _from_file(groups: Sequence[Sequence[str]], built: Lab, oneway: bool,
               existing: Sequence[str], runner: Runner, check: bool) -> Placed:
    """partition_plan for a lab file's lab: names and addresses from the file."""
    prefix = built.extra.get("prefix", "")
    real = []
    for group in groups:
        real.append([n if n in built.members else prefix + n for n in group])
        for name, ns in zip(group, real[-1]):
            if ns not in built.members:
                raise UsageError(f"{name!r} is not a namespace of lab {built.name}",
                                 f"its namespaces: {', '.join(built.members)}")
    model.check_groups(real)
    part = model.Partition(built.name, tuple(tuple(g) for g in real), oneway)
    addresses = {ns: [a for end in built.ends_in(ns) for a in end.addresses]
                 for g in real for ns in g}
    here = set(existing)
    held = faultread.tables([ns for ns in part.unheard() if ns in here],
                            runner) if check else {}
    return Placed(part, compile_faults.partition_plan(part, addresses, held, here))


def _common_lab(flat: list[str], facts: dict, lab: Optional[str]) -> str:
    """The lab every namespace named belongs to (the one given, or the only one shared)."""
    common: Optional[set[str]] = None
    for ns in flat:
        have = facts[ns].labs() if ns in facts else set()
        if not have:
            raise UsageError(f"namespace {ns!r} is not part of a vethwrap lab",
                             "see 'vethwrap show' for the labs")
        if lab is not None and lab not in have:
            raise UsageError(f"namespace {ns!r} is not in lab {lab}",
                             f"see its members: vethwrap show --lab {lab}")
        common = have if common is None else common & have
    if lab is not None:
        return lab
    if not common:
        raise UsageError("the namespaces named are not all in one lab",
                         "partition one lab at a time (name it with --lab)")
    return sorted(common)[0]


def partition(groups: Sequence[Sequence[str]], lab: Optional[str] = None, oneway: bool = False,
              runner: Optional[Runner] = None, built: Optional[Lab] = None) -> Placed:
    """Cut the groups apart; rolled back whole if any namespace fails."""
    runner = runner or default_runner()
    with locked():
        placed = partition_plan(groups, lab, oneway, runner, built, check=False)
        try:
            apply(placed.plan, runner)
        except CommandFailed:  # rolled back; a table in place says why in one line
            partition_plan(groups, lab, oneway, runner, built)
            raise
    return placed


def lab_namespaces(lab: Optional[str], runner: Runner) -> list[str]:
    """The namespaces of lab as its marks say (every namespace when lab is None)."""
    if lab is None:
        return state.list_netns(runner)
    facts, root = inventory.scan(None, runner, routes=False)
    view = inventory.labs(facts, root).get(names.check_lab(lab))
    if view is None:
        raise inventory.no_such_lab(lab)
    return view.namespaces()


def fault_services(namespaces: Sequence[str], lab: Optional[str] = None) -> list[Proc]:
    """The services that hold faults (flaps, timed restores, timelines) in the namespaces."""
    found = [p for p in (_processes(namespaces) if namespaces else [])
             if model.is_fault_service(p.service) and (lab is None or p.lab == lab)]
    # the service itself only: what it runs (ip, tc, each in a session of its own) inherits
    # its name for a moment
    pids = {p.pid for p in found}
    return [p for p in found if p.parent not in pids]


def _processes(namespaces: Sequence[str]) -> list[Proc]:
    """The processes in the namespaces, those deleted meanwhile left out (a busy host)."""
    try:
        return api.processes(namespaces)
    except UsageError:
        still = set(state.list_netns())
        return api.processes([ns for ns in namespaces if ns in still])


def held(lab: Optional[str] = None, runner: Optional[Runner] = None,
         within: Optional[Sequence[str]] = None) -> tuple[list[model.FaultTable], list[Proc]]:
    """vethwrap's partition tables and fault services, of one lab or of all.

    within: the lab's namespaces when the caller knows them (the fixture), else they are
    found by the lab's marks."""
    runner = runner or default_runner()
    spaces = list(within) if within is not None else lab_namespaces(lab, runner)
    tables = [t for t in faultread.tables(spaces, runner).values()
              if t.ours and (lab is None or t.mark.lab == lab)]
    return tables, fault_services(spaces, lab)


def heal_plan(lab: Optional[str] = None, runner: Optional[Runner] = None,
              within: Optional[Sequence[str]] = None) -> Healed:
    """What heal would do: the services it stops and the tables it removes."""
    tables, services = held(lab, runner, within)
    healed = Healed(tables, plan=compile_faults.heal_plan(tables, lab), services=services)
    healed.plan.notes += [f"stop {p.service} in {p.netns} (pid {p.pid}): it undoes its fault"
                          for p in services]
    return healed


def heal(lab: Optional[str] = None, runner: Optional[Runner] = None,
         keep: Sequence[str] = (), within: Optional[Sequence[str]] = None) -> Healed:
    """Remove every fault vethwrap placed (in lab, or everywhere), and only those.

    Fault services are stopped first (the timeline before what it started), each undoing
    its own fault as it ends; then the partition tables go. keep: service names left running
    (a timeline that heals keeps itself).
    """
    runner = runner or default_runner()
    with locked():
        healed = heal_plan(lab, runner, within)
        services = [p for p in healed.services if p.service not in keep]
        services.sort(key=lambda p: p.service != model.TIMELINE)
        for proc in services:
            healed.stopped += _stop(proc)
        apply(healed.plan, runner)
    return healed


def _stop(proc: Proc) -> list[Stopped]:
    """Stop one fault service by name; one that ended meanwhile is no error."""
    try:
        return api.stop(proc.netns, proc.service, grace=STOP_GRACE)
    except UsageError:
        return []
