"""Faults placed on a lab: partitions as nftables tables, their marks, and durations. No I/O.

A partition is one nftables table, `inet vethwrap`, in each namespace that must stop hearing
some others: its input hook drops packets whose source is an address of those namespaces.
Filtering on input (not on a bridge or a router) cuts the namespaces, not the fabric: in a
chain a-b-c, cutting b off from a and c still lets a and c talk through b, as a partition of
nodes should. Every rule carries a mark in its comment, vethwrap/LAB/partition/WAY, so a
fault is recognised from the kernel alone; a table of that name without the mark is someone
else's and is never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from veth_wrap.errors import UsageError
from veth_wrap.model.names import Mark

TABLE = "vethwrap"  # the nftables table (family inet) of a namespace's partition
FAMILY = "inet"
CHAIN = "input"
PRIORITY = "-300"  # before any filter a user's own tables may hold (raw's priority)
ROLE = "partition"
TWOWAY, ONEWAY = "twoway", "oneway"
SETS = {4: ("from4", "ipv4_addr", "ip"), 6: ("from6", "ipv6_addr", "ip6")}
# services that place or undo faults; destroy stops them with the lab, heal stops them first
FLAP_PREFIX, RESTORE_PREFIX, TIMELINE = "fault-flap-", "fault-restore-", "fault-timeline"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def is_fault_service(name: Optional[str]) -> bool:
    """True for the name of a service that holds a fault (a flap, a timed restore, a timeline)."""
    return bool(name) and (name.startswith((FLAP_PREFIX, RESTORE_PREFIX)) or name == TIMELINE)


def seconds(word: object, what: str = "duration") -> float:
    """A duration as a user wrote it ("2s", "500ms", "1m", 3) in seconds, or refuse it."""
    text = str(word).strip()
    found = _DURATION.match(text)
    if not found:
        raise UsageError(f"{what} {text[:40]!r} is not a duration",
                         "write it like 2s, 500ms or 1m")
    return float(found.group(1)) * _UNIT[found.group(2)]


@dataclass(frozen=True)
class Partition:
    """Groups of namespaces that stop hearing each other; oneway: only the first is unheard."""

    lab: str
    groups: tuple[tuple[str, ...], ...]
    oneway: bool = False

    @property
    def way(self) -> str:
        """The mark's last field."""
        return ONEWAY if self.oneway else TWOWAY

    def mark(self) -> Mark:
        """The mark every rule of the partition carries."""
        return Mark(self.lab, ROLE, self.way)

    def unheard(self) -> dict[str, tuple[str, ...]]:
        """Each namespace that drops, and the namespaces whose packets it drops."""
        found: dict[str, tuple[str, ...]] = {}
        for index, group in enumerate(self.groups):
            if self.oneway and index == 0:
                continue
            sources = (self.groups[0] if self.oneway else
                       [ns for other, g in enumerate(self.groups) if other != index for ns in g])
            for ns in group:
                found[ns] = tuple(sources)
        return found


def check_groups(groups: Sequence[Sequence[str]]) -> None:
    """Refuse fewer than two groups, an empty one, or a namespace in two."""
    if len(groups) < 2:
        raise UsageError("a partition needs at least two groups",
                         "e.g. 'vethwrap partition a,b c' cuts a and b off from c")
    seen: set[str] = set()
    for group in groups:
        if not group:
            raise UsageError("an empty group in the partition", "name its namespaces: A,B")
        twice = seen.intersection(group)
        if twice:
            raise UsageError(f"{sorted(twice)[0]} is in two groups", "name it in one only")
        seen.update(group)


def split_addresses(addresses: Iterable[str]) -> dict[int, list[str]]:
    """Addresses (with or without a prefix length) by IP version, without the length."""
    found: dict[int, list[str]] = {4: [], 6: []}
    for address in addresses:
        ip = address.split("/")[0]
        found[6 if ":" in ip else 4].append(ip)
    return {v: sorted(set(ips)) for v, ips in found.items()}


def table_script(mark: Mark, addresses: Iterable[str]) -> str:
    """The `nft -f` text of one namespace's table: drop input from the addresses.

    It starts with `create table`, which fails when the table is there: one transaction, so
    a table in place (vethwrap's or another's) is never merged into, and nothing changes."""
    by_version = split_addresses(addresses)
    lines = [f"create table {FAMILY} {TABLE}", f"table {FAMILY} {TABLE} {{"]
    for version, (name, kind, _) in SETS.items():
        elems = by_version[version]
        elements = f" elements = {{ {', '.join(elems)} }};" if elems else ""
        lines.append(f"  set {name} {{ type {kind};{elements} }}")
    lines.append(f"  chain {CHAIN} {{ type filter hook input priority {PRIORITY}; "
                 "policy accept;")
    for name, _, proto in SETS.values():
        lines.append(f'    {proto} saddr @{name} counter drop comment "{mark.text()}"')
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FaultTable:
    """vethwrap's table in one namespace, as `nft -j list ruleset` shows it."""

    netns: str
    mark: Optional[Mark]  # None: a table of that name that vethwrap did not write
    addresses: tuple[str, ...] = ()
    dropped: int = 0  # packets its rules dropped so far

    @property
    def ours(self) -> bool:
        """True when vethwrap wrote it."""
        return self.mark is not None and self.mark.role == ROLE

    def to_json(self) -> dict:
        """The stable JSON shape `show --json` gives a partition table."""
        return {"namespace": self.netns, "lab": self.mark.lab if self.mark else None,
                "way": self.mark.kind if self.mark else None,
                "drops_from": list(self.addresses), "dropped_packets": self.dropped}


@dataclass
class _Parts:
    sets: dict[str, list[str]] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)
    dropped: int = 0
    seen: bool = False


def parse_ruleset(netns: str, doc: dict) -> Optional[FaultTable]:
    """vethwrap's table in one namespace's `nft -j list ruleset` document, if it has one."""
    parts = _Parts()
    for item in doc.get("nftables", []) if isinstance(doc, dict) else []:
        _take(parts, item)
    if not parts.seen:
        return None
    marks = {m for m in parts.marks if m.role == ROLE}
    mark = next(iter(marks)) if len(marks) == 1 and len(parts.marks) == len(SETS) else None
    addresses = tuple(a for name, _, _ in SETS.values() for a in parts.sets.get(name, []))
    return FaultTable(netns, mark, addresses, parts.dropped)


def _take(parts: _Parts, item: dict) -> None:
    """Fold one object of the ruleset into parts, when it belongs to vethwrap's table."""
    if not isinstance(item, dict) or len(item) != 1:
        return
    kind, body = next(iter(item.items()))
    if not isinstance(body, dict) or body.get("family") != FAMILY:
        return
    if kind == "table" and body.get("name") == TABLE:
        parts.seen = True
    elif kind == "set" and body.get("table") == TABLE:
        parts.sets[str(body.get("name"))] = [str(e) for e in body.get("elem", [])
                                             if isinstance(e, str)]
    elif kind == "rule" and body.get("table") == TABLE:
        mark = Mark.parse(body.get("comment"))
        if mark is not None:
            parts.marks.append(mark)
        for expr in body.get("expr", []):
            counter = expr.get("counter") if isinstance(expr, dict) else None
            if isinstance(counter, dict):
                parts.dropped += int(counter.get("packets", 0) or 0)
