"""Reachability at scale: probes in waves that fit the kernel's shared neighbour table."""

from __future__ import annotations

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
    per_wave = max(1, neighbour_budget() // 2)
    if len(probes) <= per_wave:
        return probe_all(probes, timeout=timeout)
    runner = runner or default_runner()
    results: list[ProbeResult] = []
    for start in range(0, len(probes), per_wave):
        wave = list(probes[start:start + per_wave])
        results += probe_all(wave, timeout=timeout)
        touched = {p.source for p in wave} | {owner[p.destination] for p in wave
                                              if p.destination in owner}
        _flush(sorted(touched), runner)
    return results


def _flush(namespaces: list[str], runner: Runner) -> None:
    lines = "".join(f"netns exec {ns} ip neigh flush all\n" for ns in namespaces)
    runner.run(["ip", "-force", "-batch", "-"], stdin=lines, check=False)
