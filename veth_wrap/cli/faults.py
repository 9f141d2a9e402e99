"""CLI commands for faults: partition, heal, faults (timelines), link flap, and the agents."""

from __future__ import annotations

from typing import List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.cli.common import lab_option
from veth_wrap.errors import UsageError


def register(app: typer.Typer) -> None:
    """Attach partition, heal, faults, link flap and the hidden fault-agent commands."""
    from veth_wrap.cli.link import link_app

    app.command()(partition)
    app.command()(heal)
    link_app.command("flap")(flap)
    app.add_typer(agent_app, name="fault-agent", hidden=True)


def _groups(words: list[str]) -> list[list[str]]:
    """GROUP words (A,B) as lists of names; an empty name is refused."""
    groups = [[name.strip() for name in word.split(",")] for word in words]
    if any(not name for group in groups for name in group):
        raise UsageError("an empty name in a group", "write groups as A,B C,D,E")
    return groups


@guarded
def partition(
    groups: List[str] = typer.Argument(..., help="Groups of namespaces, each A,B,... "
                                       "(a lab's short names work with --lab)."),
    lab: Optional[str] = lab_option(),
    oneway: bool = typer.Option(False, "--oneway",
                                help="Drop only what the first group sends to the others."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Print the commands instead of running them."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Cut groups of a lab's namespaces apart; the namespaces not named hear everyone."""
    from veth_wrap.cli.output import emit_json, emit_script, line
    from veth_wrap.faults import partition as faults
    from veth_wrap.run.walker import script

    parsed = _groups(groups)
    require_root()  # the dry run reads the namespaces' addresses too
    if dry_run:
        placed = faults.partition_plan(parsed, lab, oneway)
        emit_script(script(placed.plan, f"vethwrap partition {' '.join(groups)}"))
        return
    placed = faults.partition(parsed, lab, oneway)
    if json_out:
        emit_json(placed.to_json())
        return
    arrow = " -/-> " if oneway else " -/- "
    shown = arrow.join(",".join(group) for group in placed.partition.groups)
    line(f"lab {placed.partition.lab} partitioned: {shown} (undo: vethwrap heal --lab "
         f"{placed.partition.lab})")


@guarded
def heal(
    lab: Optional[str] = lab_option(),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Print the commands instead of running them."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove every fault vethwrap placed (in one lab, or everywhere), and only those."""
    from veth_wrap.cli.output import emit_json, emit_script, line
    from veth_wrap.faults import partition as faults
    from veth_wrap.run.walker import script

    require_root()
    if dry_run:
        healed = faults.heal_plan(lab)
        header = "vethwrap heal" + (f" --lab {lab}" if lab else "")
        emit_script([f"# {note}" for note in healed.plan.notes]
                    + script(healed.plan, header))
        return
    healed = faults.heal(lab)
    if json_out:
        emit_json(healed.to_json())
        return
    if not healed.tables and not healed.stopped:
        line("no faults of vethwrap's to heal" + (f" in lab {lab}" if lab else ""))
        return
    line(f"healed: {len(healed.tables)} partition table(s) removed, {len(healed.stopped)} "
         "fault service(s) stopped")


@guarded
def flap(
    namespace: str = typer.Argument(..., help="Namespace of the interface."),
    interface: str = typer.Argument(..., help="The interface to take down and up."),
    down: str = typer.Option("2s", "--down", help="How long the link stays down each time."),
    up: str = typer.Option("5s", "--up", help="How long it stays up between."),
    count: Optional[int] = typer.Option(None, "--count", min=1,
                                        help="Flaps before it stops (default: until heal)."),
    json_out: bool = typer.Option(False, "--json", help="Print the service as JSON."),
) -> None:
    """Take a link down and up again and again, in the background (a service of the lab)."""
    from veth_wrap.cli.output import emit_json, line
    from veth_wrap.faults import agents

    require_root()
    service = agents.start_flap(namespace, interface, down, up, count)
    if json_out:
        emit_json(service.to_json())
        return
    times = f"{count} time(s)" if count else "until 'vethwrap heal'"
    line(f"{namespace}:{interface} flaps (down {down}, up {up}) {times}: service "
         f"{service.name}, pid {service.pid}, log {service.log}")


agent_app = typer.Typer(help="What fault services run (started by vethwrap itself).",
                        no_args_is_help=True)


def _emit(event: dict) -> None:
    """One event as a JSON line with its wall-clock time, at once (the log is read live)."""
    import datetime
    import json
    import sys
    import time

    now = time.time()
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(
        timespec="milliseconds")
    sys.stdout.write(json.dumps({"time": stamp, "unix": round(now, 3), **event}) + "\n")
    sys.stdout.flush()


@agent_app.command("flap")
@guarded
def agent_flap(namespace: str, interface: str, down: float, up: float, count: int) -> None:
    """Flap a link (the service `link flap` starts)."""
    from veth_wrap.faults import agents

    agents.flap(namespace, interface, down, up, count, _emit)


@agent_app.command("restore")
@guarded
def agent_restore(namespace: str, interface: str, until: float, keep: str) -> None:
    """Restore a link's impairments at a time (the service `link set --for` starts)."""
    import json

    from veth_wrap.faults import agents

    agents.restore(namespace, interface, until, json.loads(keep), _emit)


def timed(namespace: Optional[str], interface: Optional[str], lab: Optional[str], opts,
          clear: bool, duration: str, json_out: bool) -> None:
    """`link set NS IF ... --for DURATION`: impair one end for a while, then restore it."""
    from veth_wrap.cli.output import emit_json, line
    from veth_wrap.faults import agents
    from veth_wrap.model import faults as model
    from veth_wrap.model.linkopts import impairments_text

    seconds = model.seconds(duration, "--for")
    if lab is not None or clear or opts is None or not opts.impaired or opts.mtu or opts.mac:
        raise UsageError("--for times impairments of one end",
                         "give NAMESPACE INTERFACE with --delay, --jitter, --loss or --rate")
    result = agents.start_timed(namespace, interface, opts, seconds)[0]
    if json_out:
        emit_json({**result, "for_seconds": seconds})
        return
    line(f"{namespace}:{interface}: impairments: {impairments_text(result['impairments'])} "
         f"for {duration} (a service of the lab restores the earlier ones)")
