"""CLI commands that read and test labs: show, ping and pingall."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.cli.common import (
    FILE_HELP,
    file_option,
    lab_name,
    lab_option,
    namespaces_argument,
)
from veth_wrap.errors import Unreachable, UsageError


def register(app: typer.Typer) -> None:
    """Attach show, ping and pingall."""
    app.command()(show)
    app.command()(ping)
    app.command()(pingall)


@guarded
def show(
    namespaces: List[str] = namespaces_argument("Only these namespaces (default: all)."),
    lab: Optional[str] = lab_option(),
    file: Optional[Path] = file_option(),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Show vethwrap's labs as the kernel holds them: interfaces, addresses, peers, routes."""
    from veth_wrap.cli.output import say
    from veth_wrap.cli.showing import print_show, shown
    from veth_wrap.kernel import inventory, tcread

    only, chosen = _scope(namespaces, lab, file)
    # Read every namespace even when some are named: the peers at the far ends live elsewhere.
    facts, root = inventory.scan(None)
    for name in only or []:
        if name not in facts:
            say(f"{name}: no such namespace")
        elif not facts[name].labs():
            say(f"{name}: holds nothing of vethwrap's")
    views = inventory.labs(facts, root)
    if chosen is not None:
        views = inventory.one_lab(views, chosen)
    spaces = [ns for group in shown(views, only).values() for ns in group]
    print_show(facts, root, views, only, json_out, tcread.read_all(spaces),
               _faults(spaces))


def _faults(spaces: list[str]) -> tuple[dict, list]:
    """The partition tables and fault services in the namespaces shown."""
    from veth_wrap.faults.partition import fault_services
    from veth_wrap.kernel import faultread

    return faultread.tables(spaces), fault_services(spaces)


def _scope(namespaces: Optional[list[str]], lab: Optional[str], file: Optional[Path]
           ) -> tuple[Optional[list[str]], Optional[str]]:
    """(the namespaces named, or None) and the lab named; validated; root checked."""
    from veth_wrap.model import names

    chosen = lab_name(lab, file)
    if chosen is not None and namespaces:
        raise UsageError("name namespaces or a lab (--lab, -f), not both",
                         "e.g. 'vethwrap show --lab LAB'")
    for name in namespaces or []:
        names.check_netns(name)
    require_root()
    return (list(namespaces) if namespaces else None), chosen


@guarded
def ping(
    namespace: str = typer.Argument(..., help="Namespace to ping from."),
    dest: str = typer.Argument(..., help="An IPv4/IPv6 address, or a namespace vethwrap wired."),
    count: int = typer.Option(3, "--count", "-c", min=1, max=1000, help="Echo requests."),
    timeout: float = typer.Option(1.0, "--timeout", "-W", min=0.1, help="Seconds per reply."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ipv6: bool = typer.Option(False, "--ipv6", "-6",
                              help="Ping the namespace's IPv6 address (a dual-stack lab)."),
) -> None:
    """Ping from inside a namespace with the system ping, and report its statistics."""
    from veth_wrap.check.ping import ping as run_ping
    from veth_wrap.cli.output import emit_json, line
    from veth_wrap.kernel import inventory
    from veth_wrap.model import names
    from veth_wrap.model.destination import parse_destination

    names.check_netns(namespace)
    wanted = parse_destination(dest, 6 if ipv6 else None)
    require_root()
    address = inventory.destination(namespace, wanted)
    stats = run_ping(namespace, address, count=count, timeout=timeout)
    if json_out:
        emit_json(stats.to_json())
    else:
        rtt = stats.rtt_ms
        detail = f", rtt min/avg/max {rtt.min}/{rtt.avg}/{rtt.max} ms" if rtt else ""
        line(f"{namespace} -> {address}: {stats.received}/{stats.transmitted} replies, "
             f"{stats.packet_loss:g}% loss{detail}")
    if stats.received == 0:
        raise Unreachable(f"{address} did not answer {namespace}",
                          f"see why: vethwrap diagnose {namespace} {address}")


@guarded
def pingall(
    namespaces: List[str] = namespaces_argument("Only these namespaces (default: all)."),
    lab: Optional[str] = lab_option(),
    file: Optional[Path] = typer.Option(
        None, "--file", "-f", help=FILE_HELP + " With hosts: what this host reaches."),
    host: Optional[str] = typer.Option(None, "--host", help="With -f: which host this is."),
    prefix: str = typer.Option("", "--prefix", help="With -f: the prefix the lab was built with."),
    count: int = typer.Option(1, "--count", "-c", min=1, max=10,
                              help="Attempts per pair before it counts as failed."),
    timeout: float = typer.Option(1.0, "--timeout", "-W", min=0.1, help="Seconds per pair."),
    json_out: bool = typer.Option(False, "--json", help="Print every pair's result as JSON."),
    ipv6: bool = typer.Option(False, "--ipv6", "-6", help="Ping the IPv6 addresses."),
) -> None:
    """Ping every vethwrap address from every namespace of its lab: a reachability matrix."""
    from veth_wrap import api
    from veth_wrap.cli.views import print_matrix

    if file is not None:
        from veth_wrap.cli import hosts
        from veth_wrap.cli.labfiles import load

        found = load(file, prefix)
        if found.extra.get("hosts") is not None:  # a lab over several hosts: from this one
            hosts.pingall(found, host, timeout * count, json_out)
            return
        lab, file = found.name, None
    only, chosen = _scope(namespaces, lab, file)
    cells = api.pingall(only or (), chosen, count, timeout, 6 if ipv6 else None)
    if not cells:
        raise UsageError("no vethwrap lab found to ping", "build one: vethwrap create ns0 ns1")
    print_matrix(cells, json_out)
    failed = [c for c in cells if not c.replied]
    if failed:
        raise Unreachable(f"{len(failed)} of {len(cells)} pairs did not answer",
                          f"see why: vethwrap diagnose {failed[0].source} {failed[0].address}")


