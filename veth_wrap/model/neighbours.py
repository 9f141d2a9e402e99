"""How many neighbour (ARP, NDP) entries a lab can make, against the kernel's table limit.

The kernel keeps one neighbour table per IP version for every namespace together; past
gc_thresh3 entries it refuses new ones ("neighbor table overflow!") and packets to
unresolved neighbours are dropped. On one layer-2 segment of k hosts each may learn the
other k - 1; IPv6 ends also hold link-local addresses, which are resolved again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from veth_wrap.model.topology import End, Lab

KEYS = {4: "net.ipv4.neigh.default.gc_thresh", 6: "net.ipv6.neigh.default.gc_thresh"}


@dataclass(frozen=True)
class Table:
    """One version's neighbour table as the kernel has it: its hard limit and entries now."""

    version: int
    limit: int  # gc_thresh3
    used: int = 0


def entries(lab: Lab, version: int) -> int:
    """The most neighbour entries of one IP version the lab can make, all segments together."""
    segments: dict[object, set] = defaultdict(set)
    for index, link in enumerate(lab.links):
        for end, other in ((link.a, link.b), (link.b, link.a)):
            if _holds(end, version):  # a member's end joins its bridge's segment
                segments[(other.netns, other.master) if other.master else index].add(
                    (end.netns, end.ifname))
    per_address = 2 if version == 6 else 1  # and the link-local address of each
    return sum(len(hosts) * (len(hosts) - 1) for hosts in segments.values()) * per_address


def _holds(end: End, version: int) -> bool:
    return any((":" in address) == (version == 6) for address in end.addresses)


def warning(lab: Lab, table: Table) -> Optional[str]:
    """The warning for a lab whose entries, with those in the table now, reach its limit."""
    count = entries(lab, table.version)
    if not count or count + table.used < table.limit:
        return None
    size = 1 << (2 * (count + table.used)).bit_length()  # room for twice what it may hold
    key = KEYS[table.version]
    return (f"lab {lab.name} can make {count} IPv{table.version} neighbour entries; with the "
            f"{table.used} in the table now that reaches the kernel's limit for all namespaces "
            f"together ({key}3 = {table.limit}): past it new neighbours are refused and their "
            f"packets dropped. vethwrap does not change host settings; to raise it: "
            f"sysctl -w {key}3={size} {key}2={size // 2}")
