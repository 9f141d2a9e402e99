"""pingall: every member of a lab probes every other; the result as a matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from veth_wrap.model.facts import LabView, NetnsState, target_address
from veth_wrap.model.names import Role


@dataclass(frozen=True)
class Cell:
    """One source-destination pair of the matrix."""

    lab: str
    source: str
    target: str
    address: str
    replied: bool
    rtt_ms: Optional[float]
    error: Optional[str]


def run_matrix(facts: dict[str, NetnsState], views: dict[str, LabView],
               only: Optional[list[str]], count: int, timeout: float,
               version: Optional[int] = None) -> list[Cell]:
    """Probe every ordered pair of members within each lab."""
    from veth_wrap.check.rawping import Probe
    from veth_wrap.check.reach import probe_rounds

    pairs = []
    for view in views.values():
        members = [m for m in view.members if only is None or m in only]
        # a namespace that only holds a bridge has no address to send from
        for src in (m for m in members if _addressed(facts.get(m), version)):
            for dst in members:
                address = target_address(facts, src, dst, version) if src != dst else None
                if address:
                    pairs.append((view.name, src, dst, address))
    owner = {address: dst for _, _, dst, address in pairs}
    results = probe_rounds([Probe(src, addr) for _, src, _, addr in pairs], owner,
                          timeout=timeout * count)
    return [Cell(lab, src, dst, addr, r.replied, r.rtt_ms, r.error)
            for (lab, src, dst, addr), r in zip(pairs, results)]


def _addressed(st: Optional[NetnsState], version: Optional[int]) -> bool:
    """True when a namespace has an address (of the IP version) on a link of vethwrap's."""
    return st is not None and any((":" in a) == (version == 6) or version is None
                                  for link in st.marked() if link.mark.role != Role.UPLINK
                                  for a in link.addresses)
