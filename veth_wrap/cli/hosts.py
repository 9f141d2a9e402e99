"""`up`, `down` and `pingall` of a lab file with hosts: one host's share, or every host by ssh."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from veth_wrap.cli.app import require_root
from veth_wrap.cli.output import emit_json, emit_script, out, say, table
from veth_wrap.errors import Unreachable, UsageError, VerificationFailed
from veth_wrap.model.hosts import of_lab
from veth_wrap.model.topology import Lab
from veth_wrap.run.transaction import script


def check_flags(lab: Lab, host: Optional[str], all_hosts: bool) -> None:
    """--host and --all-hosts need hosts in the file, and exclude each other."""
    if (host or all_hosts) and of_lab(lab) is None:
        raise UsageError(f"lab {lab.name} has no hosts section",
                         "drop --host/--all-hosts, or add hosts: to the file")
    if host and all_hosts:
        raise UsageError("give --host NAME or --all-hosts, not both",
                         "--all-hosts runs up on every host over ssh")


def up(lab: Lab, text: str, file: Path, host: Optional[str], all_hosts: bool, prefix: str,
       dry_run: bool, no_verify: bool, json_out: bool) -> None:
    """up of a file with hosts: this host's share, or every host's over ssh."""
    from veth_wrap import multihost

    check_flags(lab, host, all_hosts)
    if all_hosts:
        _everywhere(lab, text, ["up"], prefix, dry_run, no_verify, json_out)
        return
    if dry_run:
        from veth_wrap.model import labservices

        share, steps = multihost.plan(lab, host)
        started = labservices.commands(share)
        emit_script(script(steps, f"vethwrap up: lab {lab.name} from {file}, "
                                 f"host {share.extra['host']}")
                    + (["# then its services here, in order"] + started if started else []))
        for note in steps.notes:
            say(note)
        return
    require_root()
    try:
        built = multihost.up(lab, host, check=not no_verify)
    except VerificationFailed as failure:  # explained as create explains it
        from veth_wrap.cli.lab import explain

        explain(failure)
        raise
    from veth_wrap.cli.services import start_file_services

    if json_out:  # one document: the share, then its services as they started
        print_built(built, file, True, start_file_services(built.lab))
        return
    print_built(built, file, False)
    start_file_services(built.lab)


def print_built(built, file: Path, json_out: bool, services: Optional[list] = None) -> None:
    """What up --host built: the share's ends, the VXLAN ends, what answered, what waits
    (and in JSON, the services of its namespaces)."""
    from veth_wrap.model.hostshare import tunnels_of

    lab, report = built.lab, built.report
    pending = [p.__dict__ for p in report.pending] if report else []
    if json_out:
        emit_json({"lab": lab.name, "host": built.host.name, "changed": built.changed,
                   "namespaces": list(lab.members), "hub": lab.hub,
                   "tunnels": [_tunnel_json(t) for t in tunnels_of(lab)],
                   "verified": bool(report and report.ok),
                   "probes": report.probes if report else 0,
                   "answered": report.replied if report else 0, "pending": pending,
                   "services": services or []})
        return
    if not built.changed:
        say(f"lab {lab.name} on host {built.host.name} is already as {file} describes; "
            "nothing changed")
    tbl = table(f"lab {lab.name} on host {built.host.name} ({built.host.underlay})",
                ["namespace", "interface", "address", "peer"])
    for link in lab.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if here.netns in lab.members:
                tbl.add_row(here.netns, here.ifname, ", ".join(here.addresses) or "-",
                            f"{there.netns}:{there.ifname}" + (f" (bridge {there.master})"
                                                               if there.master else ""))
    for tunnel in tunnels_of(lab):
        far = ", ".join(sorted({host for host, _, _ in tunnel.far})) or "-"
        tbl.add_row(tunnel.end.netns, tunnel.end.ifname, ", ".join(tunnel.end.addresses) or "-",
                    f"vxlan {tunnel.vni} to {', '.join(tunnel.remotes)} (host {far})")
    out().print(tbl)
    if report:
        out().print(f"verified: {report.replied}/{report.probes} probes answered"
                    + (f", {len(report.pending)} pending" if report.pending else ""))
        for pair in report.pending[:10]:
            say(f"pending: {pair.source} -> {pair.target} at {pair.address} on host "
                f"{pair.host} (its share is not up yet, or the underlay does not reach it)")
        if len(report.pending) > 10:
            say(f"pending: and {len(report.pending) - 10} more")


def _tunnel_json(tunnel) -> dict:
    return {"namespace": tunnel.end.netns, "interface": tunnel.end.ifname, "vni": tunnel.vni,
            "local": tunnel.local, "remotes": list(tunnel.remotes), "port": tunnel.port,
            "mtu": tunnel.mtu, "bridge": tunnel.end.master}


def down(lab: Lab, text: str, host: Optional[str], all_hosts: bool, prefix: str,
         dry_run: bool, json_out: bool) -> None:
    """down of a file with hosts: what this host's kernel holds of the lab, or every host's."""
    from veth_wrap import multihost
    from veth_wrap.cli.views import print_removed

    check_flags(lab, host, all_hosts)
    if all_hosts:
        _everywhere(lab, text, ["down"], prefix, dry_run, False, json_out)
        return
    name = multihost.pick(lab, host).name if host else None
    require_root()
    steps = multihost.down(lab.name, dry_run=dry_run)
    where = f" on host {name}" if name else ""
    if dry_run:
        emit_script(script(steps, f"vethwrap down: lab {lab.name}{where}"))
    print_removed(steps, dry_run, json_out, f"lab {lab.name}{where}", lab=lab.name, host=name)


def _everywhere(lab: Lab, text: str, command: list[str], prefix: str, dry_run: bool,
                no_verify: bool, json_out: bool) -> None:
    """Run the command on every host over ssh, in parallel; roll every host back on failure."""
    from veth_wrap.run import remote

    named = ["--prefix", prefix] if prefix else []
    words = command + named + (["--no-verify"] if no_verify else [])
    if dry_run:
        words.append("--dry-run")
    remote.remote_command(lab)  # refuses a bad VETHWRAP_REMOTE_COMMAND before any ssh
    if command == ["up"] and not dry_run:
        results = remote.up_all(lab, text, words, ["down"] + named)
    else:
        results = remote.each(lab, text, words)
    if json_out:
        emit_json({"lab": lab.name, "hosts": [r.to_json() for r in results]})
        return
    for result in results:
        if dry_run:
            line = remote.remote_line(lab, result.host, words)
            out().print(f"# host {result.host.name}: ssh {result.host.ssh} {shlex.quote(line)}",
                        markup=False, highlight=False)
            emit_script(result.stdout.splitlines())
        else:
            say(f"host {result.host.name}: {result.summary()}")


def pingall(lab: Lab, host: Optional[str], timeout: float, json_out: bool) -> None:
    """Probe everything this host's namespaces should reach, across hosts too."""
    from veth_wrap import multihost
    from veth_wrap.check.hostcheck import ping_pairs, reachable_pairs
    from veth_wrap.kernel import state

    require_root()
    me = multihost.pick(lab, host, state.read_root())
    found = ping_pairs(reachable_pairs(lab, me.name), timeout)
    if json_out:
        emit_json({"lab": lab.name, "host": me.name, "total": len(found),
                   "answered": sum(1 for _, ok, _, _ in found if ok),
                   "pairs": [dict(p.__dict__, replied=ok, rtt_ms=rtt, error=error)
                             for p, ok, rtt, error in found]})
    else:
        _print_pairs(lab, me.name, found)
    failed = [pair for pair, ok, _, _ in found if not ok]
    if failed:
        raise Unreachable(f"{len(failed)} of {len(found)} pairs did not answer from host {me.name}",
                          f"see why: vethwrap diagnose {failed[0].source} {failed[0].address}")


def _print_pairs(lab: Lab, host: str, found) -> None:
    sources = list(dict.fromkeys(pair.source for pair, _, _, _ in found))
    targets = list(dict.fromkeys(pair.target for pair, _, _, _ in found))
    where = {pair.target: pair.host for pair, _, _, _ in found}
    grid = {(pair.source, pair.target): ok for pair, ok, _, _ in found}
    answered = sum(grid.values())
    tbl = table(f"lab {lab.name} from host {host}: {answered}/{len(found)} pairs answer",
                ["from \\ to", *(f"{t} ({where[t]})" for t in targets)])
    for source in sources:
        cells = [grid.get((source, t)) for t in targets]
        tbl.add_row(source, *("[dim]-[/]" if c is None else "[green]ok[/]" if c
                              else "[bold red]X[/]" for c in cells))
    out().print(tbl)
