"""Why a destination does not answer from a namespace: walk the path both ways, name the cause.

`diagnose()` pings, and when that fails (or always, with verbose) follows `ip -j route get`
hop by hop (pathcheck, offpath), then the way back, then the firewalls on the path (fwread),
then the loss and delay its ends hold (impairpath), and returns the first thing wrong with
its evidence and the commands that fix it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from veth_wrap.errors import CommandFailed, UsageError
from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.firewall import Packet, Place
from veth_wrap.explain.fixes import shell_line, unique
from veth_wrap.explain.nets import Nets
from veth_wrap.explain.walk import Walk
from veth_wrap.model.names import check_netns
from veth_wrap.run.runner import Runner, default_runner

__all__ = ["Cause", "Diagnosis", "diagnose"]

PROBE_WAIT = 1.0  # seconds the probe waits for a reply


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
        }


def check_destination(dest: str) -> str:
    """Return an IP address, or refuse it naming the bad value."""
    try:
        return str(ipaddress.ip_address(dest))
    except ValueError:
        raise UsageError(f"destination {dest!r} is not an IP address",
                         "give an IPv4 or IPv6 address such as 10.0.0.2") from None


def diagnose(namespace: str, dest: str, runner: Runner | None = None,
             verbose: bool = False) -> Diagnosis:
    """Ping dest from namespace; when it fails (or with verbose) find out why."""
    check_netns(namespace)
    dest = check_destination(dest)
    runner = runner or default_runner()
    nets = Nets.open(namespace, runner)
    received, said = _ping(namespace, dest, runner)
    nets.processes += 1
    diag = Diagnosis(namespace, dest, received, None, "", [said])
    if received and not verbose:
        diag.summary = f"{dest} answers from {namespace}"
        return diag
    finding, walks = _walk(nets, namespace, dest)
    if finding is None and not received:
        finding = _firewalls(nets, namespace, dest, walks, runner)
    if finding is None and not received:
        finding = _impairments(nets, walks)
    for walk in walks:
        diag.checked.extend(walk.checked)
    diag.checked.append(f"read with {nets.processes} processes")
    return _conclude(diag, finding)


def _ping(namespace: str, dest: str, runner: Runner) -> tuple[bool, str]:
    """Two echo requests; (answered, what ping said)."""
    from veth_wrap.check.ping import ping

    try:
        stats = ping(namespace, dest, count=2, timeout=PROBE_WAIT, runner=runner)
    except CommandFailed as exc:
        return False, f"ping {dest} from {namespace}: {exc.stderr or exc.message}"
    return stats.received > 0, (f"ping {dest} from {namespace}: {stats.transmitted} sent, "
                                f"{stats.received} received")


def _walk(nets: Nets, namespace: str, dest: str) -> tuple[Finding | None, list[Walk]]:
    """The way there, then the way back (also when the way there needs a fix first)."""
    there = Walk(nets, dest)
    finding = there.run(namespace)
    walks = [there]
    if finding is not None and finding.reply_done:
        return finding, walks
    source = (finding.source if finding else None) or there.source
    end = there.end if there.reached else _home(nets, dest)
    if not source or end is None:
        return finding, walks
    assume = finding.adds if finding else None
    back = Walk(nets, source.split("/")[0], source=dest, reply=True, assume=assume)
    walks.append(back)
    reply = back.run(end)
    return _merge(finding, reply), walks


def _home(nets: Nets, dest: str):
    """The namespace that has an address, when exactly one has it."""
    holders = nets.holders(dest)
    return holders[0][0] if len(holders) == 1 else None


def _merge(there: Finding | None, back: Finding | None) -> Finding | None:
    """The first finding, with what the way back needs added when it is something else."""
    if there is None or back is None:
        return there or back
    extra = [fix for fix in back.fixes if fix not in there.fixes]
    if back.fixes and not extra:
        return there
    there.evidence.append(f"and for the replies: {back.summary}")
    there.fixes = unique(there.fixes + extra)
    return there


def _firewalls(nets: Nets, namespace: str, dest: str, walks: list[Walk],
               runner: Runner) -> Finding | None:
    """With the path in order, ask the firewalls on it."""
    from veth_wrap.explain.fwread import bridge_nf, inspect

    there = walks[0]
    source = there.source
    if not source or not there.reached:
        return None
    places = []
    for walk in walks:
        for ns, role, device in walk.visits:
            if walk.reply and role in ("source", "dest"):
                continue
            bridged = role == "bridge" and bridge_nf(nets, ns)
            places.append(Place(ns, role, device, bridged))
    packets = (Packet(source, dest, "requests"), Packet(dest, source, "replies"))
    return inspect(nets, list(dict.fromkeys(places)), packets,
                   lambda: _ping(namespace, dest, runner), walks[-1].checked)


def _impairments(nets: Nets, walks: list[Walk]) -> Finding | None:
    """With the path and its firewalls in order, ask tc what the ends on it hold."""
    from veth_wrap.explain.impairpath import impaired

    crossed = [end for walk in walks for end in walk.crossed]
    return impaired(nets, crossed, PROBE_WAIT * 1000, walks[-1].checked)


def _conclude(diag: Diagnosis, finding: Finding | None) -> Diagnosis:
    """Fill the diagnosis from the finding (or say what was checked)."""
    if diag.reachable:
        diag.summary = f"{diag.destination} answers from {diag.namespace}"
        if finding is not None:
            diag.evidence.append(f"the walk still noted: {finding.summary}")
        return diag
    if finding is None:
        finding = Finding(Cause.UNKNOWN, f"{diag.destination} does not answer from "
                          f"{diag.namespace}, and nothing checked explains why")
    diag.cause, diag.summary = finding.cause, finding.summary
    diag.evidence.extend(finding.evidence)
    diag.fixes = [list(fix) for fix in unique(finding.fixes)]
    return diag
