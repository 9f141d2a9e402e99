"""What destroy stops: every process in the namespaces it deletes, whoever started it, and
every service cgroup of those namespaces and of the labs that go."""

from __future__ import annotations

import dataclasses
import os
from contextlib import contextmanager
from typing import Iterable, Iterator, Mapping, Optional

from veth_wrap.compile import namefiles
from veth_wrap.compile.destroy import Teardown
from veth_wrap.compile.uplink import UPLINK
from veth_wrap.kernel import nameread, procs, state
from veth_wrap.model.procfacts import LOG_ROOT, Proc, Stopped, log_dir
from veth_wrap.model.servicespec import parse_cgroup_name
from veth_wrap.run import cgroups, services
from veth_wrap.run.runner import Runner
from veth_wrap.steps import Kind, Plan

GRACE = 2.0  # seconds between SIGTERM and SIGKILL
ROUNDS = 5  # scans for processes that appeared while others were being stopped


def complete(plan: Teardown, targets: list[str], facts: dict, views: dict, lab: Optional[str],
             everything: bool, runner: Runner) -> Teardown:
    """The destroy plan with processes to stop, and name files and logs to remove."""
    doomed_names = plan.targets(Kind.DEL_NETNS)
    doomed = procs.inodes(doomed_names)
    going = _labs_going(views, doomed_names, targets, facts, lab, everything)
    holders = {}
    # only labs this host knows (by name, name file or log): a namespace named in another
    # mount namespace (a container's, a simulated host's) looks unnamed from here
    for inode, (mark, pid) in procs.orphans(procs.named_inodes(), runner).items():
        if mark.lab in going:
            doomed[inode] = f"(unnamed, lab {mark.lab})"
            holders[inode] = pid
    files = list(nameread.read(targets).values())
    files += [f for name in going for f in nameread.marked(name)]
    files += nameread.stale(state.list_netns(runner), runner)
    logs = [log_dir(sorted(facts[ns].labs())[0], ns) for ns in doomed_names if facts[ns].labs()]
    logs, links = nameread.present(logs + [f"{LOG_ROOT}/{name}" for name in going])
    links += [f.link for f in files if f.link]
    notes = [f"{link} is a symbolic link: left as it is, and nothing removed through it"
             for link in dict.fromkeys(links)]
    gateways = procs.gateways(None) if everything else procs.gateways(
        doomed_names + [ns for ns, name in plan.links if name == UPLINK], labs=going)
    return dataclasses.replace(plan, steps=plan.steps + namefiles.removal_steps(files, logs),
                               pending=procs.scan(doomed) + gateways, doomed=doomed,
                               holders=holders, gateways=gateways, notes=plan.notes + notes,
                               # the cgroup hierarchy is the machine's, shared with other
                               # hosts on it: only the services of labs this host knows go
                               cgroups=service_groups(going, doomed_names + list(targets)))


def service_groups(labs: Iterable[str], namespaces: Iterable[str]) -> list[str]:
    """The service cgroups of these labs and of these namespaces (running or left empty)."""
    labs, namespaces = set(labs), set(namespaces)
    found = []
    for folder in cgroups.services():
        lab, netns, _ = parse_cgroup_name(folder)
        if lab in labs or netns in namespaces:
            found.append(folder)
    return found


@contextmanager
def pinned(teardown: Teardown) -> Iterator[None]:
    """Hold every doomed namespace open while destroy runs.

    The kernel reuses a freed namespace's inode number; held open, a namespace keeps it, so
    the scan after the deletion cannot mistake another run's new namespace for one of ours.
    """
    fds = []
    try:
        for inode, label in list(teardown.doomed.items()):
            holder = teardown.holders.get(inode)
            path = f"/proc/{holder}/ns/net" if holder else f"{procs.NETNS_RUN}/{label}"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # gone already: nothing can run in it any more
                teardown.doomed.pop(inode)
                continue
            fds.append(fd)
            if os.fstat(fd).st_ino != inode:
                teardown.doomed.pop(inode)
        yield
    finally:
        for fd in fds:
            os.close(fd)


def _labs_going(views: dict, doomed: list[str], targets: list[str], facts: dict,
                lab: Optional[str], everything: bool) -> set[str]:
    """The labs of which nothing stays (a namespace named like a gone lab counts too)."""
    if everything:
        return set(views) | set(nameread.log_labs()) | {
            f.mark.lab for f in nameread.marked()}
    if lab:
        return {lab}
    gone = set(doomed)
    found = {view.name for view in views.values() if view.created and set(view.created) <= gone}
    # `destroy ns0 ns1` after the namespaces went by hand: lab ns0 (the default name) is gone
    return found | {name for name in targets if name not in facts and name not in views}


def stop_in_dropped(steps: Plan) -> list[Stopped]:
    """End the processes in namespaces a plan deletes (an edited lab dropped them)."""
    dropped = steps.targets(Kind.DEL_NETNS)
    if not dropped:
        return []
    groups = service_groups((), dropped)
    gateways = procs.gateways(dropped)  # read now: the namespaces go when the plan runs
    return stop_inside(procs.inodes(dropped), GRACE, groups) + end_gateways(gateways)


def end_gateways(gateways: list[Proc], grace: float = GRACE) -> list[Stopped]:
    """End uplink gateways (pasta runs in the host's namespace: no namespace scan finds it)."""
    return services.stop(gateways, grace) if gateways else []


def end_stray_gateways(namespaces: Iterable[str], grace: float = GRACE) -> list[Stopped]:
    """End the gateways of namespaces that are gone (a rollback deleted them)."""
    stray = [p for p in procs.gateways(namespaces) if procs.netns_inode(p.netns or "") is None]
    return end_gateways(stray, grace)


def stop_inside(doomed: Mapping[int, str], grace: float, groups: Iterable[str] = ()
                ) -> list[Stopped]:
    """Stop every process in the doomed namespaces and in the groups (service cgroups), all
    at once, again until none is left; the groups are removed."""
    stopped: list[Stopped] = []
    groups = list(groups)
    for _ in range(ROUNDS):
        found = procs.scan(dict(doomed))
        groups = list(dict.fromkeys(groups + [p.cgroup for p in found if p.cgroup]))
        if not found and not groups:
            return stopped
        stopped += services.stop(found + members(groups, found), grace, groups)
        groups = []
    raise services.StillRunning(f"processes keep starting in {sorted(doomed.values())[0]}",
                                "find what starts them with 'vethwrap ps', then destroy again")


def members(groups: Iterable[str], known: Iterable[Proc] = ()) -> list[Proc]:
    """The processes of service cgroups, wherever they run, less those already known."""
    seen = {proc.pid for proc in known}
    found = []
    for group in groups:
        for pid in cgroups.members(group):
            proc = None if pid in seen else procs.describe_any(pid)
            if proc is not None:
                found.append(proc)
    return found
