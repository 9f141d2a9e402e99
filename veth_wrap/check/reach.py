"""Reachability at scale: probes in rounds that fit the kernel's shared neighbour table."""

from __future__ import annotations

import socket
from typing import Iterable, Optional, Sequence

from veth_wrap.check.rawping import NEIGH_STATS, Probe, ProbeResult, probe_all
from veth_wrap.kernel import state
from veth_wrap.run.runner import Runner, default_runner, in_parts

GC_THRESH3 = "/proc/sys/net/{}/neigh/default/gc_thresh3"
FAMILY = {4: "ipv4", 6: "ipv6"}
RETRY_AT_MOST = 64  # unanswered probes tried again: beyond that, the lab is simply broken
RETRIES = 2
MIN_ROOM = 64  # entries a round may always make, however full the tables are


def neighbour_budget(versions: Iterable[int] = (4,)) -> int:
    """How many new neighbour entries one round may make: well below the host-wide limit.

    The ARP table is one table for every namespace, capped by gc_thresh3 (1024 by default),
    and so is IPv6's; each answered probe adds an entry at both ends, and what a table holds
    already (other labs, other users of the host) counts against its limit too.
    """
    return min(_room(version) for version in set(versions) or {4})


def _room(version: int) -> int:
    try:
        with open(GC_THRESH3.format(FAMILY[version])) as handle:
            limit = int(handle.read().split()[0])
    except (OSError, ValueError):
        limit = 1024
    return max(MIN_ROOM, limit * 3 // 4 - _entries(version))


def _entries(version: int) -> int:
    """The entries the host-wide neighbour table of an IP version holds now."""
    path = NEIGH_STATS[socket.AF_INET6 if version == 6 else socket.AF_INET][0]
    try:
        with open(path) as stats:
            stats.readline()  # the header; every row after it repeats the count
            return int(stats.readline().split()[0], 16)
    except (OSError, ValueError, IndexError):
        return 0


def probe_rounds(probes: Sequence[Probe], owner: dict[str, str],
                timeout: float = 1.0, runner: Optional[Runner] = None) -> list[ProbeResult]:
    """Probe all; between rounds flush the neighbour tables of the namespaces probed.

    owner maps each destination address to the namespace holding it, so that a flush
    touches only the lab's own namespaces. Each round is sized by the room the tables have
    at that moment, a flush making more. The last round's entries stay: flushing forks an
    `ip` per namespace, the kernel reclaims an entry on demand once it is 5 s old, and the
    next run counts what is left; so the first round is the short one.
    """
    versions = {6 if ":" in probe.destination else 4 for probe in probes}
    groups = _groups(probes, owner)
    results: list[Optional[ProbeResult]] = [None] * len(probes)
    while groups:
        # the budget is never below MIN_ROOM: that many pairs go without reading the tables
        fits = len(groups) <= MIN_ROOM // 2
        count = len(groups) if fits else _round_size(len(groups), neighbour_budget(versions) // 2)
        now = [index for group in groups[:count] for index in group]
        groups = groups[count:]
        for index, result in zip(now, probe_all([probes[i] for i in now], timeout=timeout)):
            results[index] = result
        if groups:
            touched = {probes[i].source for i in now} | {owner[probes[i].destination]
                                                          for i in now
                                                          if probes[i].destination in owner}
            _flush(sorted(touched), runner or default_runner())
    _again(probes, results, timeout)
    return [result for result in results if result is not None]


def _again(probes: Sequence[Probe], results: list, timeout: float) -> None:
    """Probe again, together, the few that got no answer (twice at most).

    A bridge floods each broadcast to every port, and with hundreds of ports (and the IPv6
    chatter of ends just brought up) the kernel's per-CPU backlog, netdev_max_backlog,
    drops copies: a try after the storm says more than a lost ARP request.
    """
    for _ in range(RETRIES):
        failed = [i for i, result in enumerate(results)
                  if result is not None and not result.replied]
        if not failed or len(failed) > RETRY_AT_MOST:
            return
        for index, result in zip(failed, probe_all([probes[i] for i in failed], timeout=timeout)):
            if result.replied:
                results[index] = result


def _rounds(probes: Sequence[Probe], owner: dict[str, str], pairs: int) -> list[list[int]]:
    """Indexes of probes in rounds of at most `pairs` namespace pairs, as a steady budget
    of `pairs` would make them: the first round the shortest."""
    groups, rounds = _groups(probes, owner), []
    while groups:
        count = _round_size(len(groups), pairs)
        rounds.append([index for group in groups[:count] for index in group])
        groups = groups[count:]
    return rounds


def _groups(probes: Sequence[Probe], owner: dict[str, str]) -> list[list[int]]:
    """Indexes of probes by unordered namespace pair, in order of first appearance.

    A probe a->b leaves an entry in a and one in b; b->a needs the very same two, so
    keeping both directions in one round gets twice the probes out of the table's budget.
    """
    groups: dict[frozenset, list[int]] = {}
    for index, probe in enumerate(probes):
        key = frozenset((probe.source, owner.get(probe.destination, probe.destination)))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def _round_size(left: int, pairs: int) -> int:
    """How many of `left` pairs go now: all when they fit, else what leaves full rounds."""
    return left if left <= pairs else (left % pairs or pairs)


def _flush(namespaces: list[str], runner: Runner) -> None:
    """Flush with several `ip` processes at once: each line forks an `ip` of its own."""
    in_parts(namespaces, lambda part: _flush_part(part, runner))


def _flush_part(namespaces: list[str], runner: Runner) -> None:
    # a namespace deleted meanwhile fails its line only (see state.read_docs)
    state.read_docs([f"netns exec {ns} ip neigh flush all" for ns in namespaces], runner,
                    strict=False)
