"""CLI commands that read and test labs: show, ping and pingall."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.errors import Unreachable, UsageError


def register(app: typer.Typer) -> None:
    """Attach show, ping and pingall."""
    app.command()(show)
    app.command()(ping)
    app.command()(pingall)


@guarded
def show(
    namespaces: List[str] = typer.Argument(None, help="Only these namespaces (default: all)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Show vethwrap's labs as the kernel holds them: interfaces, addresses, peers, routes."""
    from veth_wrap.cli.output import say
    from veth_wrap.cli.showing import print_show, shown
    from veth_wrap.kernel import inventory
    from veth_wrap.kernel import tcread as linklive
    from veth_wrap.model import names

    for name in namespaces or []:
        names.check_netns(name)
    require_root()
    # Read every namespace even when some are named: the peers at the far ends live elsewhere.
    facts, root = inventory.scan(None)
    for name in namespaces or []:
        if name not in facts:
            say(f"{name}: no such namespace")
        elif not facts[name].labs():
            say(f"{name}: holds nothing of vethwrap's")
    views = inventory.labs(facts, root)
    spaces = [ns for group in shown(views, namespaces or None).values() for ns in group]
    print_show(facts, root, views, namespaces or None, json_out, linklive.read_all(spaces))


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
    from veth_wrap.cli.output import emit_json, out
    from veth_wrap.model import names

    names.check_netns(namespace)
    require_root()
    address = resolve_destination(namespace, dest, 6 if ipv6 else None)
    stats = run_ping(namespace, address, count=count, timeout=timeout)
    if json_out:
        emit_json(stats.to_json())
    else:
        rtt = stats.rtt_ms
        detail = f", rtt min/avg/max {rtt.min}/{rtt.avg}/{rtt.max} ms" if rtt else ""
        out().print(f"{namespace} -> {address}: {stats.received}/{stats.transmitted} replies, "
                    f"{stats.packet_loss:g}% loss{detail}")
    if stats.received == 0:
        raise Unreachable(f"{address} did not answer {namespace}",
                          f"see why: vethwrap diagnose {namespace} {address}")


def resolve_destination(namespace: str, dest: str, version: Optional[int] = None) -> str:
    """An address as given, or the address (of one IP version) of a namespace vethwrap wired."""
    from veth_wrap.kernel import inventory, state
    from veth_wrap.model import names

    existing = state.list_netns()
    if namespace not in existing:
        raise UsageError(f"namespace {namespace!r} does not exist", "see 'vethwrap show'")
    try:
        given = ipaddress.ip_address(dest)
    except ValueError:
        given = None
    if given is not None:
        if version and given.version != version:
            raise UsageError(f"{dest} is not an IPv{version} address",
                             "give an IPv6 address, or leave out -6")
        return str(given)
    names.check_netns(dest)
    if dest not in existing:
        raise UsageError(f"namespace {dest!r} does not exist", "see 'vethwrap show'")
    facts = state.read([namespace, dest], routes=False)
    address = inventory.target_address(facts, namespace, dest, version)
    if address is None and version:
        raise UsageError(f"{dest!r} has no IPv{version} address from vethwrap",
                         "build the lab with --ipv6 for dual stack, or leave out -6")
    if address is None:
        raise UsageError(f"{dest!r} is neither an address nor a namespace vethwrap wired",
                         "give an IPv4 or IPv6 address, or see 'vethwrap show'")
    return address


@guarded
def pingall(
    namespaces: List[str] = typer.Argument(None, help="Only these namespaces (default: all)."),
    count: int = typer.Option(1, "--count", "-c", min=1, max=10,
                              help="Attempts per pair before it counts as failed."),
    timeout: float = typer.Option(1.0, "--timeout", "-W", min=0.1, help="Seconds per pair."),
    json_out: bool = typer.Option(False, "--json", help="Print every pair's result as JSON."),
    ipv6: bool = typer.Option(False, "--ipv6", "-6", help="Ping the IPv6 addresses."),
    file: Optional[Path] = typer.Option(None, "--file", "-f",
                                        help="The lab of a file (with hosts: from this host)."),
    host: Optional[str] = typer.Option(None, "--host", help="With -f: which host this is."),
    prefix: str = typer.Option("", "--prefix", help="With -f: the prefix the lab was built with."),
) -> None:
    """Ping every vethwrap address from every namespace of its lab: a reachability matrix."""
    from veth_wrap.check.matrix import print_matrix, run_matrix
    from veth_wrap.kernel import inventory
    from veth_wrap.model import names

    if file is not None:
        from veth_wrap.cli import hosts
        from veth_wrap.cli.files import load

        lab = load(file, prefix)
        if lab.extra.get("hosts") is not None:
            hosts.pingall(lab, host, timeout * count, json_out)
            return
        namespaces = list(namespaces or []) or list(lab.members)

    for name in namespaces or []:
        names.check_netns(name)
    require_root()
    facts, root = inventory.scan(namespaces or None, routes=False)
    views = inventory.labs(facts, root)
    cells = run_matrix(facts, views, namespaces or None, count, timeout, 6 if ipv6 else None)
    if not cells:
        raise UsageError("no vethwrap lab found to ping", "build one: vethwrap create ns0 ns1")
    print_matrix(cells, json_out)
    failed = [c for c in cells if not c.replied]
    if failed:
        raise Unreachable(f"{len(failed)} of {len(cells)} pairs did not answer",
                          f"see why: vethwrap diagnose {failed[0].source} {failed[0].address}")


