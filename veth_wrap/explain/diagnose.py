"""Why a destination does not answer from a namespace: walk the path both ways, name the cause.

`diagnose()` pings, and when that fails (or always, with verbose) follows `ip -j route get`
hop by hop (pathcheck, offpath), then the way back, then the firewalls on the path (fwread),
then the loss and delay its ends hold (impairpath), and returns the first thing wrong with
its evidence and the commands that fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from veth_wrap.errors import CommandFailed
from veth_wrap.explain.countedping import Probe
from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.firewall import Packet, Place
from veth_wrap.explain.fixes import shell_line, unique
from veth_wrap.explain.nets import Nets
from veth_wrap.explain.pathwalk import Walk
from veth_wrap.model.destination import Address
from veth_wrap.model.names import check_netns
from veth_wrap.run.runner import Runner, default_runner

__all__ = ["Cause", "Diagnosis", "diagnose"]

PROBE_WAIT = 0.6  # seconds the probe waits for the last reply
HEALTHY_WITHIN = 0.25  # a ping answered by then costs nothing more; else the walk starts


@dataclass
class Diagnosis:
    """The answer: reachable or not, the cause, what shows it, and how to fix it."""

    namespace: str
    destination: str
    reachable: bool
    cause: Cause | None
    summary: str
    evidence: list[str] = field(default_factory=list)
    fixes: list[list[str]] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    causes: list[Finding] = field(default_factory=list)
    processes: int = 0
    nets: Nets | None = field(default=None, repr=False, compare=False)

    @property
    def script(self) -> list[str]:
        """The fixes as shell lines, ready to paste."""
        return [shell_line(fix) for fix in self.fixes]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "namespace": self.namespace,
            "destination": self.destination,
            "reachable": self.reachable,
            "cause": self.cause.value if self.cause else None,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fixes": [list(fix) for fix in self.fixes],
            "fix_script": self.script,
            "checked": list(self.checked),
            "causes": [c.to_json() for c in self.causes],
            "processes": self.processes,
        }


def diagnose(namespace: str, address: Address, runner: Runner | None = None,
             verbose: bool = False, settle: float = 0) -> Diagnosis:
    """Ping address from namespace; when it fails (or with verbose) find out why.

    settle: right after a change, when the first ping fails, one more echo request that
    waits this long (address resolution left FAILED by the broken state starts over)."""
    check_netns(namespace)
    dest = str(address)
    runner = runner or default_runner()
    from veth_wrap.kernel.state import list_netns

    names = list_netns(runner)
    if namespace not in names:  # before the ping, so a typo is told as such
        Nets.open(namespace, runner, names)  # raises the usage error
    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(1) as pool:
        pinging = pool.submit(_ping, namespace, address, runner)
        wait([pinging], timeout=HEALTHY_WITHIN)
        if pinging.done() and pinging.result()[0] and not verbose:
            return _healthy(namespace, dest, pinging.result()[1])
        # while the ping waits for replies that may never come, the path is read and walked
        nets = Nets.open(namespace, runner, names)
        nets.counted.add()
        causes, walks = _walk(nets, namespace, dest)
        received, said = pinging.result()
    if not received and settle:
        received, said = _ping(namespace, address, runner, count=1, wait=settle)
    if received and not verbose:
        return _healthy(namespace, dest, said)
    diag = Diagnosis(namespace, dest, received, None, "", [said], processes=2)
    if not received and not nets.holders(dest):  # held on another host, through VXLAN?
        from veth_wrap.explain.crossing import across

        crossed = across(namespace, dest, runner)
        if crossed is not None:
            causes = _listed(crossed, "vxlan")
    probe = None
    if not received and not _stops(causes) and walks[0].reached:
        if not causes:  # a test ping the packets can get through to where they stop
            probe = Probe(nets, [d for w in walks for d in w.crossed], walks[0].family)
        ping = (lambda: probe.run(lambda: _ping(namespace, address, runner))) if probe else None
        causes += _listed(_firewalls(nets, dest, walks, ping), "firewall")
        causes += _listed(_xfrm(nets, dest, walks), "xfrm")
        if probe is not None and not probe.ran:
            probe.run(lambda: _ping(namespace, address, runner))
        if probe is not None and not causes:
            causes += _listed(probe.tc_drops(), "tc")
    if not received and not causes:
        causes += _listed(_impairments(nets, walks), "tc")
    for walk in walks:
        diag.checked.extend(walk.checked)
    if probe is not None:
        diag.checked.extend(probe.notes)
    diag.processes, diag.nets = nets.processes, nets
    diag.checked.append(f"read with {nets.processes} processes")
    diag = _conclude(diag, causes)
    if probe is not None and not received:
        where = probe.stops(walks[0].crossed) if diag.cause is Cause.UNKNOWN else ""
        if diag.cause is Cause.UNKNOWN:  # no fix, but what the counters and the kernel said
            diag.causes[0].evidence = probe.evidence()
        if where:
            diag.summary += f"; the counters say where: {where}"
            diag.causes[0].summary = diag.summary
            diag.causes[0].decided_by = "counters"
        if diag.cause is Cause.UNKNOWN and probe.reasons:  # the kernel's word, and no fix
            _kernel_said(diag, probe.reasons[0])
        diag.evidence.extend(probe.evidence())
    return diag


def _kernel_said(diag: Diagnosis, drop) -> None:
    """Nothing read explains the loss, but the kernel said why it freed the packets."""
    found = diag.causes[0]
    found.cause = diag.cause = Cause.KERNEL_DROP
    found.decided_by = "kfree_skb"
    diag.summary = found.summary = (
        f"{diag.destination} does not answer from {diag.namespace}: the kernel drops the "
        f"packets ({drop.reason} in {drop.function}), and nothing read names the setting "
        "behind it" + diag.summary.partition("explains why")[2])


def _healthy(namespace: str, dest: str, said: str) -> Diagnosis:
    """A destination that answers: two processes (netns list, ping) were enough."""
    return Diagnosis(namespace, dest, True, None, f"{dest} answers from {namespace}", [said],
                     processes=2)


def _stops(causes: list[Finding]) -> bool:
    return any(not c.passable for c in causes)


def _listed(finding: Finding | None, source: str) -> list[Finding]:
    if finding is None:
        return []
    finding.decided_by = finding.decided_by or source
    return [finding]


def _ping(namespace: str, address: Address, runner: Runner, count: int = 2,
          wait: float = PROBE_WAIT) -> tuple[bool, str]:
    """Two echo requests (by default); (answered, what ping said)."""
    from veth_wrap.check.ping import ping

    try:
        stats = ping(namespace, address, count=count, timeout=wait, runner=runner)
    except CommandFailed as exc:
        return False, f"ping {address} from {namespace}: {exc.stderr or exc.message}"
    return stats.received > 0, (f"ping {address} from {namespace}: {stats.transmitted} sent, "
                                f"{stats.received} received")


def _walk(nets: Nets, namespace: str, dest: str) -> tuple[list[Finding], list[Walk]]:
    """The way there, then the way back (also when the way there needs a fix first)."""
    there = Walk(nets, dest)
    nets.prefetch_routes(dest)
    stop = there.run(namespace)
    causes = there.found + _tagged(stop, "forward", there)
    walks = [there]
    if stop is not None and stop.reply_done:
        return causes, walks
    source = (stop.source if stop else None) or there.source
    end = there.end if there.reached else (stop.end if stop else None) or _end_after(there)
    if not source or end is None:
        return causes, walks
    assume = stop.adds if stop else None
    back = Walk(nets, source.split("/")[0], source=dest, reply=True, assume=assume)
    walks.append(back)
    reply = back.run(end)
    known = [f for c in causes for f in c.fixes]
    for found in back.found + _tagged(reply, "reply", back):
        had = bool(found.fixes)
        found.fixes = [f for f in found.fixes if f not in known]
        if had and not found.fixes:  # the same thing met again on the way back
            continue
        if found.fixes or not stop or not stop.fixes:
            causes.append(found)
    return causes, walks


def _tagged(stop: Finding | None, direction: str, walk: Walk) -> list[Finding]:
    if stop is None:
        return []
    stop.direction = direction
    if stop.namespace is None and walk.visits:
        stop.namespace = walk.visits[-1][0]
    stop.decided_by = stop.decided_by or "path"
    return [stop]


def _end_after(walk: Walk):
    """Where the packets arrive once the fix is in: a namespace linked to the last one walked
    that holds the target (links followed, never a search of every namespace)."""
    ns = walk.visits[-1][0] if walk.visits else None
    for ifname in list(nets_links(walk, ns)):
        for reach in walk.nets.reaches(ns, ifname):
            if walk.holds_addr(reach.ns, walk.target):
                return reach.ns
    return None


def nets_links(walk: Walk, ns) -> list[str]:
    """The interface names of a namespace on the walk."""
    return [name for name in walk.nets.ns_links(ns) if name != "lo"]


def _firewalls(nets: Nets, dest: str, walks: list[Walk], probe) -> Finding | None:
    """With the path in order, ask the firewalls on it."""
    from veth_wrap.explain.fwread import inspect

    places = _places(nets, walks)
    if places is None:
        return None
    source = walks[0].source
    packets = (Packet(source, dest, "requests"), Packet(dest, source, "replies"))
    return inspect(nets, list(dict.fromkeys(places)), packets, probe, walks[-1].checked)


def _xfrm(nets: Nets, dest: str, walks: list[Walk]) -> Finding | None:
    """With the path in order, ask the IPsec policies on it."""
    from veth_wrap.explain.xfrm import inspect

    places = _places(nets, walks)
    if places is None:
        return None
    source = walks[0].source.split("/")[0]
    packets = (Packet(source, dest, "requests"), Packet(dest, source, "replies"))
    return inspect(nets, list(dict.fromkeys(places)), packets, walks[-1].checked)


def _places(nets: Nets, walks: list[Walk]) -> list[Place] | None:
    """The namespaces on the path and their roles (None: the path is not whole yet)."""
    from veth_wrap.explain.fwread import bridge_nf

    there = walks[0]
    if not there.source or not there.reached:
        return None
    places = []
    crossed = [end for walk in walks for end in walk.crossed]
    for walk in walks:
        for ns, role, device in walk.visits:
            if walk.reply and role in ("source", "dest"):
                continue
            bridged = role == "bridge" and bridge_nf(nets, ns)
            devices = tuple(dict.fromkeys(d for n, d in crossed if n == ns))
            places.append(Place(ns, role, device, bridged, devices))
    return places


def _impairments(nets: Nets, walks: list[Walk]) -> Finding | None:
    """With the path and its firewalls in order, ask tc what the ends on it hold."""
    from veth_wrap.explain.impairpath import impaired

    crossed = [end for walk in walks for end in walk.crossed]
    return impaired(nets, crossed, PROBE_WAIT * 1000, walks[-1].checked)


def _conclude(diag: Diagnosis, causes: list[Finding]) -> Diagnosis:
    """Fill the diagnosis from the causes, in path order (or say what was checked)."""
    if diag.reachable:
        diag.summary = f"{diag.destination} answers from {diag.namespace}"
        for found in causes:
            diag.evidence.append(f"the walk still noted: {found.summary}")
        return diag
    if not causes:
        causes = [Finding(Cause.UNKNOWN, f"{diag.destination} does not answer from "
                          f"{diag.namespace}, and nothing checked explains why",
                          namespace=diag.namespace, decided_by="none")]
    first = causes[0]
    diag.causes = causes
    diag.cause = first.cause
    diag.summary = first.summary + (f"; and {len(causes) - 1} more cause"
                                    f"{'s' if len(causes) > 2 else ''} on the round trip"
                                    if len(causes) > 1 else "")
    for found in causes:
        if found is not first:
            where = "for the replies" if found.direction == "reply" else "then"
            diag.evidence.append(f"and {where}: {found.summary}")
        diag.evidence.extend(found.evidence)
    diag.fixes = [list(fix) for fix in unique([f for c in causes for f in c.fixes])]
    return diag
