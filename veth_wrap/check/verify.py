"""Read the built lab back from the kernel and check it against the topology, then probe it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.check.readback import ROUTED, Seen, implied_carrier, state_spaces
from veth_wrap.kernel import reader, state
from veth_wrap.kernel.state import NetnsState
from veth_wrap.model.topology import End, Kind, Lab
from veth_wrap.run.reads import Reads
from veth_wrap.run.runner import Runner, default_runner

SETTLE = 3.0  # seconds links may take to show carrier after being set up


@dataclass
class Report:
    """What verification found; ok when problems is empty."""

    problems: list[str] = field(default_factory=list)
    probes: int = 0
    replied: int = 0
    unreached: list[tuple[str, str]] = field(default_factory=list)  # (source, address)

    @property
    def ok(self) -> bool:
        """True when the kernel matches the lab and every probe was answered."""
        return not self.problems


def verify(lab: Lab, runner: Optional[Runner] = None, reach: bool = True,
           timeout: float = 2.0, seen: Optional[Seen] = None) -> Report:
    """Check state with `ip -j`, routes with `ip -j route get`, then reachability.

    seen: what the build read back as it ended (reads_for), used for the first look;
    any later look, while carrier comes up, reads the kernel again.
    """
    runner = runner or default_runner()
    report = Report()
    deadline = time.monotonic() + SETTLE
    first = implied_carrier(lab, seen.facts) if seen else None
    hub_from = HUB_PROBED_FROM if reach else HUB_SPEAKS_FROM
    while True:
        report.problems = _state_problems(lab, runner, first, hub_from)
        first = None
        # Carrier comes up a few milliseconds after `link set up`: poll, do not sleep blindly.
        if not report.problems or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if not report.problems and lab.kind in ROUTED:
        report.problems += _check_routes(lab, runner, seen.routes if seen else None)
    if reach and not report.problems:
        _probe(lab, report, timeout)
    return report


HUB_SPEAKS_FROM = 16  # members: from here a bridge in a hub is checked from the hub alone
HUB_PROBED_FROM = 2  # the same when probes follow, which reach every member's every address


def reads_for(lab: Lab) -> Optional[Reads]:
    """What verification looks at first, for the build to read back as it ends (run/readback);
    None for a lab with ends in the root namespace, which verification reads itself."""
    if any(end.netns is None for end in lab.ends()):
        return None
    hops = [(src, addr) for src, _, addr in ring(lab)] if lab.kind in ROUTED else []
    return Reads(tuple(state_spaces(lab, HUB_PROBED_FROM)), tuple(hops))


def _state_problems(lab: Lab, runner: Runner, seen: Optional[dict[str, NetnsState]] = None,
                    hub_from: int = HUB_SPEAKS_FROM) -> list[str]:
    """What `ip -j` shows amiss: every namespace read, or for a bridge the hub alone.

    Reading a namespace forks an `ip` inside it, and that fork grows dearer with every
    namespace on the host. A hub shows each port up, on the bridge and with carrier, which
    a veth has only while its far end is up too; the probes that follow then reach every
    member's address through its port (probe_pairs makes every member a target).
    """
    spaces = state_spaces(lab, hub_from)
    hub_only = spaces == (lab.hub,)
    if seen is not None and all(ns in seen for ns in spaces):
        facts = seen
    else:
        facts = state.read(spaces, runner, routes=False)
    root = state.read_root(runner) if any(e.netns is None for e in lab.ends()) else None
    problems = []
    for end in lab.ends():
        if end.netns is None or end.netns in facts or not hub_only:
            problems += _check_end(end, facts.get(end.netns) if end.netns else root)
    for bridge in lab.bridges:
        st = facts.get(bridge.netns) if bridge.netns else root
        link = st.links.get(bridge.name) if st else None
        if link is None or not link.up:
            problems.append(f"bridge {bridge.name} is missing or down")
    return problems


def _check_end(end: End, st: Optional[NetnsState]) -> list[str]:
    where = end.netns or "the root namespace"
    link = st.links.get(end.ifname) if st else None
    if link is None:
        return [f"{end.ifname} is missing in {where}"]
    problems = []
    if not link.up or not link.lower_up:
        problems.append(f"{end.ifname} in {where} is not up (state {link.operstate})")
    for address in end.addresses:
        if address not in link.addresses:
            problems.append(f"{end.ifname} in {where} lacks address {address}")
    if end.master and link.master != end.master:
        problems.append(f"{end.ifname} in {where} is not attached to {end.master}")
    return problems


def ring(lab: Lab) -> list[tuple[str, str, str]]:
    """(source, target namespace, address): each member to the next, the last to the first."""
    pairs = []
    members = [ns for ns in lab.members if lab.address_of(ns)]  # bridge holders have none
    for i, source in enumerate(members):
        target = members[(i + 1) % len(members)]
        if len(members) == 2 and i == 1:
            target = members[0]
        pairs += _toward(lab, source, target)
    return pairs


def _toward(lab: Lab, source: str, target: str) -> list[tuple[str, str, str]]:
    """(source, target, address) for each IP version target has (dual stack: both checked)."""
    found = [(source, target, lab.address_of(target, source, version))
             for version in lab.versions() or [None]]
    return [probe for probe in found if probe[2]]


def probe_pairs(lab: Lab) -> list[tuple[str, str, str]]:
    """What verification pings: on a bridge, members two by two and both ways; else the ring.

    On a bridge any order reaches every port. A pair pinging both ways leaves two neighbour
    entries where a ring leaves two per member, and the kernel's table is shared and small:
    a bridge of 1,000 needs fewer rounds, and fewer namespaces flushed between them.
    """
    if lab.kind is not Kind.BRIDGE:
        return ring(lab)
    members = list(lab.members)
    if len(members) % 2:
        members.append(members[0])
    pairs = []
    for first, second in zip(members[::2], members[1::2]):
        pairs += _toward(lab, first, second) + _toward(lab, second, first)
    return pairs


def _check_routes(lab: Lab, runner: Runner,
                  seen: Optional[dict[tuple[str, str], Optional[str]]] = None) -> list[str]:
    """Each ring hop's route leaves by the interface the topology says it should."""
    checks = [(src, tgt, addr, _expected_dev(lab, src, tgt)) for src, tgt, addr in ring(lab)]
    if seen is not None and all((src, addr) in seen for src, _, addr, _ in checks):
        devices = [seen[src, addr] for src, _, addr, _ in checks]
    else:
        found = reader.routes([(src, addr) for src, _, addr, _ in checks], runner)
        devices = [route.get("dev") if route else None for route in found]
    problems = []
    for (src, _tgt, addr, dev), got in zip(checks, devices):
        if dev and got != dev:
            problems.append(f"in {src} the route to {addr} leaves by {got}, not {dev}")
    return problems


def _expected_dev(lab: Lab, source: str, target: str) -> Optional[str]:
    """The end in source that leads towards target (direct link, else along the chain)."""
    for link in lab.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if here.netns == source and there.netns == target:
                return here.ifname
    if lab.kind is Kind.CHAIN:
        i, j = lab.members.index(source), lab.members.index(target)
        step = lab.members[i + 1] if j > i else lab.members[i - 1]
        return _expected_dev(lab, source, step)
    return None


def _probe(lab: Lab, report: Report, timeout: float) -> None:
    from veth_wrap.check.rawping import Probe
    from veth_wrap.check.reach import probe_rounds

    pairs = probe_pairs(lab)
    owner = {addr: tgt for _, tgt, addr in pairs}
    results = probe_rounds([Probe(src, addr) for src, _, addr in pairs], owner, timeout)
    report.probes = len(results)
    for (src, tgt, addr), result in zip(pairs, results):
        if result.replied:
            report.replied += 1
        else:
            report.problems.append(f"{src} cannot reach {tgt} at {addr}: {result.error}")
            report.unreached.append((src, addr))
