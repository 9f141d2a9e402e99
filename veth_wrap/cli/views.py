"""How results look: rich tables for people, JSON for scripts."""

from __future__ import annotations

from typing import Optional

from veth_wrap.check.matrix import Cell
from veth_wrap.cli.output import emit_json, out, say, table
from veth_wrap.model.topology import Lab


def lab_json(lab: Lab) -> dict:
    """The stable JSON shape of a lab's wiring."""
    def end(e):
        return {"namespace": e.netns, "interface": e.ifname, "addresses": list(e.addresses),
                "master": e.master}

    return {
        "lab": lab.name, "topology": lab.kind.value, "subnet": lab.subnet,
        "namespaces": list(lab.members), "hub": lab.hub,
        "bridges": [{"namespace": b.netns, "name": b.name} for b in lab.bridges],
        "links": [{"a": end(link.a), "b": end(link.b)} for link in lab.links],
        "routes": [{"namespace": r.netns, "dest": r.dest, "via": r.via, "dev": r.dev}
                   for r in lab.routes],
    }


def print_made(built, json_out: bool, unchanged: str, services: Optional[list] = None) -> None:
    """A create's or up's notes, `unchanged` when nothing needed doing, then its summary
    (with the services a file's `up` started, when given)."""
    for note in built.notes:
        say(note)
    if not built.changed:
        say(unchanged)
    print_built(built, json_out, services)


def print_removed(steps, dry_run: bool, json_out: bool, label: str = "", **keys) -> None:
    """A destroy's or down's notes; unless a dry run, what it stopped and its summary (and
    JSON with keys first, if asked)."""
    for note in steps.notes:
        say(note)
    if dry_run:
        return
    say_stopped(steps)
    say(f"{label}: {steps.summary()}" if label else steps.summary())
    if json_out:
        emit_json(dict(keys, **steps.to_json()))


def say_stopped(steps) -> None:
    """What destroy stopped inside the namespaces, one line each, on stderr."""
    for done in getattr(steps, "stopped", []):
        say(f"{done.line(done.proc.netns)}: {done.proc.command()}")


def print_built(built, json_out: bool, services: Optional[list] = None) -> None:
    """The summary of a create."""
    report = built.report
    if json_out:
        data = lab_json(built.lab)
        data.update(changed=built.changed, verified=bool(report and report.ok),
                    probes=report.probes if report else 0)
        emit_json(data if services is None else dict(data, services=services))
        return
    from rich.text import Text

    lab = built.lab
    tbl = table(f"lab {lab.name} ({lab.kind.value})", ["namespace", "interface", "address",
                                                       "peer"])
    members = set(lab.members)
    for link in lab.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if here.netns in members:
                # plain Text: no markup or emoji parsing of 1,000 rows of names
                tbl.add_row(*map(Text, (here.netns, here.ifname,
                                        ", ".join(here.addresses) or "-", _peer(there))))
    out().print(tbl)
    if report and report.probes:
        out().print(f"verified: {report.replied}/{report.probes} probes answered")
    elif report:  # nothing to ping from the file alone (its commands address the ends)
        out().print("verified: every link read back up; see 'vethwrap pingall' for traffic")


def _peer(end) -> str:
    where = end.netns or "root"
    return f"{where}:{end.ifname}" + (f" (bridge {end.master})" if end.master else "")


def state_text(up: bool, operstate: str) -> str:
    """A link's state for a table cell, coloured."""
    colour = "green" if operstate in ("UP", "UNKNOWN") else "red" if not up else "yellow"
    return f"[{colour}]{operstate}[/]"


def print_matrix(cells: list[Cell], json_out: bool) -> None:
    """A coloured matrix per lab, or every pair as JSON."""
    if json_out:
        emit_json({"pairs": [cell.__dict__ for cell in cells],
                   "total": len(cells), "answered": sum(c.replied for c in cells)})
        return
    from rich.text import Text

    for lab in dict.fromkeys(c.lab for c in cells):
        mine = [c for c in cells if c.lab == lab]
        names = list(dict.fromkeys(c.source for c in mine))
        grid = {(c.source, c.target): c for c in mine}
        tbl = table(f"lab {lab}: {sum(c.replied for c in mine)}/{len(mine)} pairs answer",
                    ["from \\ to", *names])
        marks = _marks()
        for src in names:
            cell = (grid.get((src, dst)) for dst in names)
            tbl.add_row(Text(src), *(marks[c.replied if c else None] for c in cell))
        out().print(tbl)


def _marks() -> dict:
    """A matrix cell's look, styled text: no markup to parse in each of n * n cells."""
    from rich.text import Text

    return {None: Text("-", style="dim"), True: Text("ok", style="green"),
            False: Text("X", style="bold red")}
