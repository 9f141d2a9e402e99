"""CLI commands that build and remove labs: create and destroy."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.cli.common import file_option, lab_name, lab_option, namespaces_argument
from veth_wrap.errors import UsageError, VerificationFailed
from veth_wrap.model.topology import Kind

PROGRESS_MIN_NAMESPACES = 8  # up to this many a bar would only flicker


def register(app: typer.Typer) -> None:
    """Attach create and destroy."""
    app.command()(create)
    app.command()(destroy)


@guarded
def create(
    namespaces: Optional[List[str]] = typer.Argument(
        None, help="Namespaces to join (created if absent)."),
    lan: Optional[List[str]] = typer.Option(
        None, "--lan", help="A LAN of comma-separated namespaces, e.g. --lan a,b,r --lan r,c,d: "
        "one bridge each, a namespace on two a router."),
    topology: Optional[Kind] = typer.Option(
        None, "--topology", "-t", case_sensitive=False,
        help="pair (default for two), bridge (default for more), chain or mesh."),
    subnet: Optional[str] = typer.Option(
        None, "--subnet", help="Addresses come from here (default 10.0.0.0/24, grown to fit)."),
    lab: Optional[str] = typer.Option(None, "--lab",
                                      help="Lab name (default: the first namespace)."),
    host_bridge: bool = typer.Option(False, "--host-bridge",
                                     help="Put the bridge in the root namespace."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Print the commands instead of running them."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the reachability check."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ipv6: bool = typer.Option(False, "--ipv6", "-6",
                              help="Add IPv6 addresses from a unique-local /64 (dual stack)."),
    delay: Optional[str] = typer.Option(None, "--delay", help="Delay on each link end, e.g. 10ms."),
    jitter: Optional[str] = typer.Option(None, "--jitter", help="Delay variation, e.g. 2ms."),
    loss: Optional[str] = typer.Option(None, "--loss", help="Random loss per end, e.g. 1%."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Rate per end, e.g. 10mbit."),
    mtu: Optional[int] = typer.Option(None, "--mtu", help="MTU of every link, e.g. 9000."),
    direction: str = typer.Option("both", "--direction",
                                  help="both ends, or a-to-b: only the first end's egress."),
    uplink: Optional[List[str]] = typer.Option(
        None, "--uplink", help="A namespace that reaches the host's networks through NAT "
        "(pasta, a user-mode gateway; nothing else on the host changes)."),
    forward: Optional[List[str]] = typer.Option(
        None, "--forward", help="HOSTPORT:NAMESPACE:PORT: a TCP port of the host forwarded "
        "into the lab (its namespace gets an uplink)."),
) -> None:
    """Create namespaces and wire them with veth pairs, then verify they ping."""
    from veth_wrap import api
    from veth_wrap.cli.output import emit_script, say
    from veth_wrap.model import shapes
    from veth_wrap.model.linkopts import link_opts
    from veth_wrap.run.transaction import script

    if topology is Kind.CUSTOM:
        raise UsageError("--topology custom is for lab files", "use pair, bridge, chain or mesh")
    opts = link_opts(delay, jitter, loss, rate, mtu)
    gateways = _uplinks(uplink or [], forward or [])
    if lan:
        built_lab = _lans(lan, namespaces, topology, subnet, lab, host_bridge, opts, ipv6,
                          gateways)
    elif not namespaces:
        raise UsageError("name the namespaces to join, or give --lan groups",
                         "e.g. 'vethwrap create ns0 ns1' or 'vethwrap create --lan a,b,r "
                         "--lan r,c,d'; see 'vethwrap create --help'")
    else:
        nets = shapes.parse_subnets(subnet, "--subnet") if subnet is not None else None
        built_lab = shapes.build(namespaces, kind=topology, subnet=nets, lab=lab,
                                 host_bridge=host_bridge, opts=opts, ipv6=ipv6,
                                 direction=direction)
        built_lab = _with_uplinks(built_lab, gateways)
    if dry_run:
        steps = api.plan(built_lab)
        emit_script(script(steps, f"vethwrap create: lab {built_lab.name}"))
        for warning in steps.warnings:
            say(warning)
        return
    require_root()
    try:
        # about 8 ops a member on a bridge: netns add, port and its mark, 5 in the member
        with progress_bar("creating", len(built_lab.members), len(built_lab.links) * 8) as tick:
            built = api.create(built_lab, check=not no_verify, progress=tick)
    except VerificationFailed as failure:
        explain(failure)
        raise
    from veth_wrap.cli.views import print_made

    print_made(built, json_out, f"lab {built_lab.name} is already built as asked; nothing changed")


def _uplinks(names: List[str], forwards: List[str]):
    """The --uplink and --forward options as Uplinks (checked against the lab later)."""
    if not names and not forwards:
        return ()
    from veth_wrap.model import uplinks

    return uplinks.build(names, [uplinks.forward(text) for text in forwards])


def _with_uplinks(built, gateways):
    """The lab with its uplinks, each in one of its namespaces."""
    import dataclasses

    for gateway in gateways:
        if gateway.netns not in built.members:
            raise UsageError(f"--uplink {gateway.netns}: not a namespace of the lab",
                             "name one of the namespaces being joined")
    return dataclasses.replace(built, uplinks=gateways)


def _lans(groups: List[str], namespaces, topology, subnet, lab, host_bridge, opts, ipv6,
          gateways=()):
    """The lab of --lan groups; what does not go with them is refused."""
    from veth_wrap.model import lanspec

    clash = [word for word, given in (("namespaces", namespaces), ("--topology", topology),
                                      ("--ipv6", ipv6), ("link options", opts)) if given]
    if clash:
        raise UsageError(f"--lan does not go with {clash[0]}",
                         "name every namespace in --lan groups; for more, write a lab file")
    if subnet is not None:
        from veth_wrap.model.topology import parse_subnet

        parse_subnet(subnet, "--subnet")
    return lanspec.lans(groups, subnet, lab, host_bridge, gateways)


@guarded
def destroy(
    namespaces: List[str] = namespaces_argument("Namespaces whose vethwrap objects go."),
    everything: bool = typer.Option(False, "--all", help="Every lab vethwrap built."),
    lab: Optional[str] = lab_option(),
    file: Optional[Path] = file_option(),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Print the commands instead of running them."),
    json_out: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
    grace: float = typer.Option(2.0, "--grace", min=0, max=3600,
                                help="Seconds between SIGTERM and SIGKILL for processes inside."),
) -> None:
    """Stop what runs inside, then remove what vethwrap made, and only that."""
    from veth_wrap import api
    from veth_wrap.cli.output import emit_script
    from veth_wrap.model import names
    from veth_wrap.run.transaction import script

    namespaces = list(namespaces or [])
    chosen = sum([bool(namespaces), everything, lab is not None or file is not None])
    if chosen != 1:
        raise UsageError("name the namespaces, or give --all, --lab NAME or -f FILE (one of "
                         "them)", "e.g. 'vethwrap destroy ns0 ns1'")
    for name in namespaces:
        names.check_netns(name)
    lab = lab_name(lab, file)
    require_root()  # even the dry run reads the namespaces
    if dry_run:
        steps = api.destroy_targets(namespaces, lab, everything)
        emit_script(script(steps, "vethwrap destroy"))
    else:
        # one `netns del` per namespace; with --lab or --all the count is known only later
        count = len(namespaces) or None
        with progress_bar("destroying", count, count) as tick:
            steps = api.destroy(namespaces, lab, everything, progress=tick, grace=grace)
    from veth_wrap.cli.views import print_removed

    print_removed(steps, dry_run, json_out)


def explain(failure: VerificationFailed) -> None:
    """Run the diagnosis on the first pair that did not answer and print it on stderr."""
    if not failure.unreached:
        return
    from veth_wrap.cli.output import say
    from veth_wrap.explain.diagnose import diagnose
    from veth_wrap.model.destination import parse_address

    source, address = failure.unreached
    result = diagnose(source, parse_address(address))
    if result.reachable:
        return
    say(f"diagnosis of {source} -> {address}: {result.summary}")
    for line in result.evidence:
        say(f"  - {line}")
    for line in result.script:
        say(f"  fix: {line}")


@contextmanager
def progress_bar(what: str, namespaces: Optional[int], total: Optional[int]) -> Iterator:
    """A rich bar on stderr for work on many namespaces, only when stderr is a terminal.

    None for namespaces means not known yet (destroy --lab/--all); None for total makes the
    bar pulse instead of filling.
    """
    from veth_wrap.cli.output import QUIET

    few = namespaces is not None and namespaces <= PROGRESS_MIN_NAMESPACES
    if few or QUIET["on"] or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    from veth_wrap.cli.output import err

    with Progress(console=err(), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)
