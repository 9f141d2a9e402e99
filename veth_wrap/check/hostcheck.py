"""Verify a host's share of a lab over several hosts: local at once, crossings when they answer.

What this host built must hold and answer now. What lies across a VXLAN needs the far host to
have built its share too, which may come later: those probes are tried for a short while and
then listed as pending, which is not a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.check.rawping import Probe
from veth_wrap.check.verify import SETTLE, _check_end
from veth_wrap.kernel import state
from veth_wrap.model.hosts import of_lab
from veth_wrap.model.hostshare import tunnels_of
from veth_wrap.model.topology import End, Lab
from veth_wrap.run.runner import Runner, default_runner

ALL_PAIRS_UP_TO = 16  # bridge members: beyond, pingall -f probes O(n) pairs, not every pair
PENDING_WAIT = 3.0  # seconds `up` waits for the far side before calling a crossing pending


@dataclass(frozen=True)
class Pair:
    """A probe with what it proves: from a namespace to another's address, maybe across."""

    source: str
    target: str
    address: str
    host: str  # the host the target sits on


@dataclass
class HostReport:
    """What verifying a share found; pending crossings do not make it fail."""

    problems: list[str] = field(default_factory=list)
    probes: int = 0
    replied: int = 0
    pending: list[Pair] = field(default_factory=list)
    unreached: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_share(share: Lab, runner: Optional[Runner] = None,
                 wait: float = PENDING_WAIT) -> HostReport:
    """Local state and probes at once; crossing probes until a short deadline."""
    runner = runner or default_runner()
    report = HostReport()
    deadline = time.monotonic() + SETTLE
    while True:
        report.problems = _state_problems(share, runner)
        if not report.problems or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if report.problems:
        return report
    local, across = local_pairs(share), crossing_pairs(share)
    for pair, replied, error in _probe(local, 2.0):
        _count(report, pair, replied)
        if not replied:
            report.problems.append(f"{pair.source} cannot reach {pair.target} at "
                                   f"{pair.address}: {error}")
            report.unreached.append((pair.source, pair.address))
    waiting, until = across, time.monotonic() + wait
    while waiting:
        answers = _probe(waiting, 1.0)
        waiting = [pair for pair, replied, _ in answers if not replied]
        if not waiting or time.monotonic() >= until:
            break
    report.pending = waiting
    report.probes += len(across)
    report.replied += len(across) - len(waiting)
    return report


def _count(report: HostReport, pair: Pair, replied: bool) -> None:
    report.probes += 1
    report.replied += replied


def _probe(pairs: list[Pair], timeout: float) -> list[tuple[Pair, bool, Optional[str]]]:
    from veth_wrap.check.reach import probe_rounds

    if not pairs:
        return []
    owner = {pair.address: pair.target for pair in pairs}
    results = probe_rounds([Probe(p.source, p.address) for p in pairs], owner, timeout)
    return [(pair, r.replied, r.error) for pair, r in zip(pairs, results)]


def _state_problems(share: Lab, runner: Runner) -> list[str]:
    facts = state.read(share.namespaces(), runner, routes=False)
    ends = list(share.ends()) + [t.end for t in tunnels_of(share)]
    problems = [p for end in ends for p in _check_end(end, facts.get(end.netns))]
    for bridge in share.bridges:
        link = facts.get(bridge.netns).links.get(bridge.name) if bridge.netns in facts else None
        if link is None or not link.up:
            problems.append(f"bridge {bridge.name} is missing or down")
    for tunnel in tunnels_of(share):
        st = facts.get(tunnel.end.netns)
        link = st.links.get(tunnel.end.ifname) if st else None
        if link is not None and link.kind != "vxlan":
            problems.append(f"{tunnel.end.ifname} in {tunnel.end.netns} is a {link.kind}, "
                            "not a VXLAN")
    return problems


def _address(end: End) -> Optional[str]:
    return end.addresses[0].split("/")[0] if end.addresses else None


def local_pairs(share: Lab) -> list[Pair]:
    """Each local link one way, and each local bridge member to the next."""
    host = share.extra.get("host", "")
    pairs = [Pair(link.a.netns, link.b.netns, _address(link.b), host) for link in share.links
             if not link.b.master and link.a.netns and link.b.netns and _address(link.b)]
    members = [link.a for link in share.links if link.b.master and _address(link.a)]
    pairs += [Pair(a.netns, b.netns, _address(b), host) for a, b in zip(members, members[1:])]
    return pairs


def crossing_pairs(share: Lab) -> list[Pair]:
    """Across each VXLAN end: a link's far end; every far member of a stretched bridge."""
    members = [link.a for link in share.links if link.b.master and _address(link.a)]
    pairs = []
    for tunnel in tunnels_of(share):
        source = members[0].netns if tunnel.end.master and members else tunnel.end.netns
        if tunnel.end.master and not members:
            continue
        pairs += [Pair(source, ns, address, host) for host, ns, address in tunnel.far]
    return pairs


def reachable_pairs(lab: Lab, host: str) -> list[Pair]:
    """Everything a host's namespaces should reach in the whole lab: pingall of a file."""
    hosts = of_lab(lab)
    local = set(hosts.get(host).namespaces)
    where = {ns: hosts.of(ns).name for ns in lab.members}
    pairs = []
    for link in lab.links:
        if link.b.master:
            continue
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if here.netns in local and _address(there):
                pairs.append(Pair(here.netns, there.netns, _address(there), where[there.netns]))
    members = [link.a for link in lab.links if link.b.master and _address(link.a)]
    mine = [m for m in members if m.netns in local]
    if len(members) <= ALL_PAIRS_UP_TO:
        chosen = [(here, there) for here in mine for there in members if there is not here]
    else:  # every pair would be n² probes paced by the shared neighbour table: keep it O(n)
        after = {members[i].netns: members[(i + 1) % len(members)] for i in range(len(members))}
        chosen = [(here, after[here.netns]) for here in mine]  # each local member's next
        chosen += [(mine[0], there) for there in members if mine and there.netns not in local]
    pairs += [Pair(here.netns, there.netns, _address(there), where[there.netns])
              for here, there in dict.fromkeys(chosen)]
    return pairs


def ping_pairs(pairs: list[Pair], timeout: float) -> list[tuple[Pair, bool, Optional[float],
                                                                 Optional[str]]]:
    """Probe each pair once (several attempts within timeout): (pair, replied, rtt, error)."""
    from veth_wrap.check.reach import probe_rounds

    if not pairs:
        return []
    owner = {pair.address: pair.target for pair in pairs}
    results = probe_rounds([Probe(p.source, p.address) for p in pairs], owner, timeout)
    return [(pair, r.replied, r.rtt_ms, r.error) for pair, r in zip(pairs, results)]
