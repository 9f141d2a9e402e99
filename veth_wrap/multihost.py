"""Labs over several hosts, one host at a time: pick the host, build its share, verify it.

Each host runs vethwrap on its own kernel with the same file; what it builds is its share
(model/hostshare.py), compiled and applied like any lab (the VXLAN ends by compile/vxlan.py)
under the lock, with rollback. Nothing here talks to another host: run/remote.py does that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from veth_wrap.check.hostcheck import HostReport, verify_share
from veth_wrap.errors import UsageError
from veth_wrap.kernel import state
from veth_wrap.model import hostshare
from veth_wrap.model.hosts import Host, of_lab
from veth_wrap.model.topology import Lab
from veth_wrap.run.runner import Runner, default_runner
from veth_wrap.steps import Plan

GUESSED_MTU = 1500  # a dry run without root cannot read the underlay device


@dataclass
class HostBuilt:
    """What `up --host` did on this host and what its verification found."""

    lab: Lab  # the share
    host: Host
    plan: Plan
    report: Optional[HostReport] = None

    @property
    def changed(self) -> bool:
        return not self.plan.empty


def pick(lab: Lab, name: Optional[str], root=None) -> Host:
    """The host named, or the one whose underlay address this machine holds."""
    hosts = of_lab(lab)
    if hosts is None:
        raise UsageError("--host needs a lab file with hosts", "drop --host, or add hosts:")
    if name is not None:
        host = hosts.get(name)
        if host is None:
            raise UsageError(f"the file has no host {name!r}",
                             f"give one of: {', '.join(hosts.names())}")
        return host
    if root is None:
        raise UsageError("this lab spans hosts; say which one this is",
                         f"add --host NAME ({', '.join(hosts.names())})")
    mine = hostshare.local_hosts(hosts, root)
    if len(mine) == 1:
        return mine[0]
    which = ", ".join(f"{h.name} ({h.underlay})" for h in hosts.hosts)
    if not mine:
        raise UsageError(f"none of the hosts' underlay addresses is on this machine: {which}",
                         "add --host NAME, or run this on one of the hosts")
    raise UsageError(f"this machine holds the underlay address of {len(mine)} hosts: "
                     f"{', '.join(h.name for h in mine)}", "add --host NAME to say which")


def share_of(lab: Lab, name: Optional[str], runner: Optional[Runner] = None,
             guess: bool = False) -> Lab:
    """The share of the host named (or found), sized for its underlay device.

    guess (dry runs): where this machine is not that host, or cannot be read, assume an
    underlay of GUESSED_MTU on an unnamed device.
    """
    guessed = hostshare.Underlay(None, GUESSED_MTU)
    if os.geteuid() != 0:
        host = pick(lab, name)
        return hostshare.share(lab, host.name, guessed)
    root = state.read_root(runner or default_runner())
    host = pick(lab, name, root)
    try:
        underlay = hostshare.underlay_of(root, host.underlay)
    except UsageError:
        if not guess:
            raise
        underlay = guessed
    return hostshare.share(lab, host.name, underlay)


def plan(lab: Lab, name: Optional[str], runner: Optional[Runner] = None) -> tuple[Lab, Plan]:
    """What `up --host` would run on that host (the dry run), from this machine's kernel."""
    from veth_wrap import api

    share = share_of(lab, name, runner, guess=True)
    steps = api.update_plan(share, runner)
    if any(t.dev is None for t in hostshare.tunnels_of(share)):
        steps.notes.append(f"the underlay device of host {share.extra['host']} is not on this "
                           f"machine: MTU {GUESSED_MTU} assumed; run it on that host to know")
    return share, steps


def up(lab: Lab, name: Optional[str], runner: Optional[Runner] = None, check: bool = True,
       wait: Optional[float] = None) -> HostBuilt:
    """Build this host's share (only what is missing or changed), then verify it."""
    from veth_wrap import api
    from veth_wrap.errors import CommandFailed, VerificationFailed
    from veth_wrap.run.lock import locked
    from veth_wrap.run.transaction import apply

    runner = runner or default_runner()
    with locked():
        share = share_of(lab, name, runner)
        steps = api.update_plan(share, runner)
        try:
            if not steps.empty:
                apply(steps, runner)
        except CommandFailed as failure:
            raise _vni_taken(failure) from None
    host = of_lab(lab).get(share.extra["host"])
    built = HostBuilt(share, host, steps)
    if check:
        built.report = verify_share(share, runner, **({"wait": wait} if wait is not None else {}))
        if not built.report.ok:
            raise VerificationFailed(
                f"lab {lab.name} on host {host.name} was built but does not verify: "
                f"{built.report.problems[0]}",
                f"it is left in place: remove it with 'vethwrap down -f FILE --host {host.name}'",
                unreached=built.report.unreached[0] if built.report.unreached else None)
    return built


def _vni_taken(failure):
    """The kernel's 'File exists' on a VXLAN add: another device holds that VNI and port."""
    line = failure.failed_line or " ".join(failure.argv)
    if "type vxlan" in line and "exists" in failure.message:
        from veth_wrap.errors import ConflictError

        words = line.split()
        vni = words[words.index("id") + 1]
        port = words[words.index("dstport") + 1]
        return ConflictError(f"VNI {vni} on UDP port {port} is already used on this host "
                             "(another lab, or a VXLAN not made by vethwrap)",
                             "rename the lab, or set another vxlan_port: in the file")
    return failure


def down(lab_name: str, runner: Optional[Runner] = None, dry_run: bool = False) -> Plan:
    """Remove what this host's kernel holds of the lab: the same as destroy --lab."""
    from veth_wrap import api

    if dry_run:
        return api.destroy_targets(lab=lab_name, runner=runner)
    return api.destroy(lab=lab_name, runner=runner)
