"""CLI commands for faults: partition, heal, faults (timelines), link flap, and the agents."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.cli.common import lab_option
from veth_wrap.errors import UsageError


def register(app: typer.Typer) -> None:
    """Attach partition, heal, faults and the hidden fault-agent commands (cli/link attaches
    `link flap`)."""
    app.command()(partition)
    app.command()(heal)
    app.command()(faults)
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
    file: Optional[Path] = typer.Option(
        None, "--file", "-f", help="The lab file of a lab over several hosts: addresses come "
        "from it, and this host's namespaces get their part (run it on each host)."),
    prefix: str = typer.Option("", "--prefix", help="With -f: the prefix the lab was built with."),
    oneway: bool = typer.Option(False, "--oneway",
                                help="Drop only what the first group sends to the others."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Print the commands instead of running them."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Cut groups of a lab's namespaces apart; the namespaces not named hear everyone."""
    from veth_wrap.cli.output import emit_json, emit_script, line, say
    from veth_wrap.faults import partition as faults
    from veth_wrap.run.transaction import script

    parsed = _groups(groups)
    built = _lab_file(file, prefix, lab)
    require_root()  # the dry run reads the namespaces' addresses too
    if dry_run:
        placed = faults.partition_plan(parsed, lab, oneway, built=built)
        emit_script(script(placed.plan, f"vethwrap partition {' '.join(groups)}"))
        return
    placed = faults.partition(parsed, lab, oneway, built=built)
    for note in placed.plan.notes:
        say(note)
    if json_out:
        emit_json(placed.to_json())
        return
    arrow = " -/-> " if oneway else " -/- "
    shown = arrow.join(",".join(group) for group in placed.partition.groups)
    line(f"lab {placed.partition.lab} partitioned: {shown} (undo: vethwrap heal --lab "
         f"{placed.partition.lab})")


def _lab_file(file: Optional[Path], prefix: str, lab: Optional[str]):
    """The lab -f FILE describes (None without -f); refused beside --lab."""
    if file is None:
        return None
    if lab is not None:
        raise UsageError("give --lab NAME or -f FILE, not both", "they both name a lab")
    from veth_wrap.cli.labfiles import load

    return load(file, prefix)


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
    from veth_wrap.run.transaction import script

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
def agent_restore(namespace: str, interface: str, seconds: float, keep: str) -> None:
    """Restore a link's impairments after a while (the service `link set --for` starts)."""
    import json

    from veth_wrap.faults import agents

    agents.restore(namespace, interface, seconds, json.loads(keep), _emit)


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


@agent_app.command("timeline")
@guarded
def agent_timeline(lab: str, events: str) -> None:
    """Run a timeline's events (the service `vethwrap faults` starts)."""
    import json

    from veth_wrap.faults import timeline
    from veth_wrap.model.timeline import Event

    timeline.run(lab, [Event.from_json(item) for item in json.loads(events)], _emit)


@guarded
def faults(
    file: Optional[str] = typer.Option(None, "--file", "-f",
                                       help="A timeline: YAML list of {at: 5s, partition: ...}, "
                                       "{at: 20s, heal: true}, {at: 25s, flap: ...} events."),
    lab: Optional[str] = lab_option(),
    seed: Optional[int] = typer.Option(None, "--seed",
                                       help="Draw a random timeline from this seed instead."),
    duration: str = typer.Option("60s", "--duration", help="With --seed: how long it runs."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Print the timeline's events instead of running them."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run a timeline of faults in the background, as a service of the lab; each event goes
    to its log as a JSON line with its wall-clock time (vethwrap logs NS fault-timeline)."""
    from veth_wrap.cli.output import emit_json, line
    from veth_wrap.faults import timeline

    events = _timeline(file, seed, lab, duration)
    require_root()
    prepared = timeline.prepare(lab or events[1], events[0])
    if dry_run:
        emit_json([e.to_json() for e in prepared.events])
        return
    service = timeline.start(prepared)
    if json_out:
        emit_json({**service.to_json(), "events": [e.to_json() for e in prepared.events]})
        return
    line(f"lab {prepared.lab}: a timeline of {len(prepared.events)} event(s) runs as service "
         f"{service.name} in {service.namespace} (pid {service.pid}); its log: vethwrap logs "
         f"{service.namespace} {service.name}; stop it and undo its faults: vethwrap heal "
         f"--lab {prepared.lab}")


def _timeline(file: Optional[str], seed: Optional[int], lab: Optional[str], duration: str):
    """(events, the lab the file names) from -f FILE or --seed N (one of them)."""
    from veth_wrap.model import faults as model
    from veth_wrap.model import timeline as parse

    if (file is None) == (seed is None):
        raise UsageError("give a timeline file (-f FILE) or --seed N", "one of them, not both")
    if file is not None:
        return parse.load(file)
    if lab is None:
        raise UsageError("--seed draws from a lab's namespaces", "name it: --lab NAME")
    from veth_wrap.faults import timeline

    return timeline.drawn(seed, lab, model.seconds(duration, "--duration")), lab

