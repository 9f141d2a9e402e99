"""pingall: every member of a lab probes every other; the result as a matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from veth_wrap.cli.output import emit_json, out, table
from veth_wrap.kernel.inventory import LabView, target_address
from veth_wrap.kernel.state import NetnsState


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
    from veth_wrap.check.probe import Probe
    from veth_wrap.check.reach import probe_waves

    pairs = []
    for view in views.values():
        members = [m for m in view.members if only is None or m in only]
        for src in members:
            for dst in members:
                address = target_address(facts, src, dst, version) if src != dst else None
                if address:
                    pairs.append((view.name, src, dst, address))
    owner = {address: dst for _, _, dst, address in pairs}
    results = probe_waves([Probe(src, addr) for _, src, _, addr in pairs], owner,
                          timeout=timeout * count)
    return [Cell(lab, src, dst, addr, r.replied, r.rtt_ms, r.error)
            for (lab, src, dst, addr), r in zip(pairs, results)]


def print_matrix(cells: list[Cell], json_out: bool) -> None:
    """A coloured matrix per lab, or every pair as JSON."""
    if json_out:
        emit_json({"pairs": [cell.__dict__ for cell in cells],
                   "total": len(cells), "answered": sum(c.replied for c in cells)})
        return
    for lab in dict.fromkeys(c.lab for c in cells):
        mine = [c for c in cells if c.lab == lab]
        names = list(dict.fromkeys(c.source for c in mine))
        grid = {(c.source, c.target): c for c in mine}
        tbl = table(f"lab {lab}: {sum(c.replied for c in mine)}/{len(mine)} pairs answer",
                    ["from \\ to", *names])
        for src in names:
            tbl.add_row(src, *(_mark(grid.get((src, dst))) for dst in names))
        out().print(tbl)


def _mark(cell: Optional[Cell]) -> str:
    if cell is None:
        return "[dim]-[/]"
    return "[green]ok[/]" if cell.replied else "[bold red]X[/]"
