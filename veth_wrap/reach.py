"""Reachability at scale: probes in waves that fit the kernel's shared neighbour table."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from .probe import Probe, ProbeResult, probe_all
from .runner import Runner, default_runner

GC_THRESH3 = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"


def neighbour_budget() -> int:
    """How many new neighbour entries one wave may make: well below the host-wide limit.

    The ARP table is one table for every namespace, capped by gc_thresh3 (1024 by default);
    each answered probe adds an entry at both ends.
    """
    try:
        with open(GC_THRESH3) as handle:
            limit = int(handle.read().split()[0])
    except (OSError, ValueError):
        limit = 1024
    return max(64, limit * 3 // 4)


def probe_waves(probes: Sequence[Probe], owner: dict[str, str],
                timeout: float = 1.0, runner: Optional[Runner] = None) -> list[ProbeResult]:
    """Probe all; between waves flush the neighbour tables of the namespaces probed.

    owner maps each destination address to the namespace holding it, so that a flush
    touches only the lab's own namespaces.
    """
    budget = neighbour_budget()
    if len(probes) <= budget // 2:
        return probe_all(probes, timeout=timeout)
    runner = runner or default_runner()
    results: list[Optional[ProbeResult]] = [None] * len(probes)
    for wave in _waves(probes, owner, budget // 2):
        for index, result in zip(wave, probe_all([probes[i] for i in wave], timeout=timeout)):
            results[index] = result
        touched = {probes[i].source for i in wave} | {owner[probes[i].destination]
                                                      for i in wave
                                                      if probes[i].destination in owner}
        _flush(sorted(touched), runner)
    return [result for result in results if result is not None]


def _waves(probes: Sequence[Probe], owner: dict[str, str], pairs: int) -> list[list[int]]:
    """Indexes of probes in waves of at most `pairs` unordered namespace pairs.

    A probe a->b leaves an entry in a and one in b; b->a needs the very same two, so
    keeping both directions in one wave gets twice the probes out of the table's budget.
    """
    groups: dict[frozenset, list[int]] = {}
    for index, probe in enumerate(probes):
        key = frozenset((probe.source, owner.get(probe.destination, probe.destination)))
        groups.setdefault(key, []).append(index)
    keys = list(groups)
    return [[i for key in keys[start:start + pairs] for i in groups[key]]
            for start in range(0, len(keys), pairs)]


def _flush(namespaces: list[str], runner: Runner) -> None:
    """Flush in two `ip -batch` processes at once: each line forks an `ip` of its own."""
    half = (len(namespaces) + 1) // 2
    parts = [part for part in (namespaces[:half], namespaces[half:]) if part]
    if len(parts) == 1:
        _flush_batch(parts[0], runner)
        return
    with ThreadPoolExecutor(len(parts)) as pool:
        list(pool.map(lambda part: _flush_batch(part, runner), parts))


def _flush_batch(namespaces: list[str], runner: Runner) -> None:
    lines = "".join(f"netns exec {ns} ip neigh flush all\n" for ns in namespaces)
    runner.run(["ip", "-force", "-batch", "-"], stdin=lines, check=False)
