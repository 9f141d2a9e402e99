"""Follow a path that leaves by a VXLAN end: is the far host's underlay address reachable?

A lab over several hosts sends across hosts through VXLAN devices; the walk cannot follow a
packet into another kernel, so here the diagnosis reads where the device sends (its remote, or
a stretched bridge's all-zeros forwarding entries), then asks this host's root namespace, only
reading, whether its routes and neighbour table reach that address.
"""

from __future__ import annotations

import json
from typing import Optional

from veth_wrap.errors import CommandFailed
from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.model.names import MARK, Mark
from veth_wrap.run.runner import Runner

DEAD = {"FAILED", "INCOMPLETE"}


def _json(runner: Runner, argv: list[str]):
    try:
        text = runner.run(argv).stdout
    except CommandFailed as exc:
        return exc
    return json.loads(text) if text.strip() else []


def tunnel_for(namespace: str, dest: str, runner: Runner) -> Optional[tuple[str, dict, list]]:
    """(device, its VXLAN data, the remotes) when the route to dest leaves by VXLAN."""
    route = _json(runner, ["ip", "-n", namespace, "-j", "route", "get", dest])
    if isinstance(route, CommandFailed) or not route:
        return None
    dev = route[0].get("dev")
    link = _json(runner, ["ip", "-n", namespace, "-j", "-d", "link", "show", "dev", dev])
    if isinstance(link, CommandFailed) or not link:
        return None
    found = _vxlan(namespace, link[0], runner)
    if found is None and (mark := Mark.parse(link[0].get("ifalias"))):
        hub = f"{MARK}-{mark.lab}"  # a member of a stretched bridge: its VXLAN is in the hub
        ports = _json(runner, ["ip", "-n", hub, "-j", "-d", "link", "show", "type", "vxlan"])
        for port in ports if isinstance(ports, list) else []:
            found = found or _vxlan(hub, port, runner)
    return found


def _vxlan(ns: str, link: dict, runner: Runner) -> Optional[tuple[str, dict, list]]:
    info = link.get("linkinfo", {})
    if info.get("info_kind") != "vxlan" or "UP" not in link.get("flags", []):
        return None  # a VXLAN end that is down: the walk names that
    data = info.get("info_data", {})
    remotes = [data["remote"]] if data.get("remote") else []
    if not remotes:
        fdb = _json(runner, ["bridge", "-n", ns, "-j", "fdb", "show", "dev", link["ifname"]])
        remotes = [e["dst"] for e in fdb if isinstance(fdb, list) and e.get("dst")
                   and e.get("mac") == "00:00:00:00:00:00"]
    return f"{ns}:{link['ifname']}", data, remotes


def across(namespace: str, dest: str, runner: Runner) -> Optional[Finding]:
    """A finding when dest lies across VXLAN (None: the path stays on this host)."""
    found = tunnel_for(namespace, dest, runner)
    if found is None:
        return None
    device, data, remotes = found
    evidence = [f"the route to {dest} leaves by {device}, VXLAN {data.get('id')} to "
                f"{', '.join(remotes) or 'no host'} on UDP port {data.get('port')}"]
    for remote in remotes:
        problem = _underlay_problem(remote, data.get("local"), runner)
        if problem:
            return Finding(Cause.UNDERLAY_UNREACHABLE, f"the underlay does not reach {remote}: "
                           f"{problem}", evidence + [problem])
    return Finding(Cause.FAR_SIDE_MISSING,
                   f"the underlay reaches {', '.join(remotes)}, but nothing answers across "
                   f"VXLAN {data.get('id')}", evidence + [
                       "build the far side: vethwrap up -f FILE on that host (or --all-hosts)",
                       f"or a firewall between the hosts drops UDP port {data.get('port')}"])


def _underlay_problem(remote: str, local: Optional[str], runner: Runner) -> Optional[str]:
    """Why the root namespace cannot reach remote, or None when nothing says so."""
    argv = ["ip", "-j", "route", "get", remote] + (["from", local] if local else [])
    route = _json(runner, argv)
    if isinstance(route, CommandFailed):
        return f"ip route get {remote}: {route.stderr or route.message}"
    hop = route[0].get("gateway", remote) if route else remote
    dev = route[0].get("dev") if route else None
    neigh = _json(runner, ["ip", "-j", "neigh", "show", "to", hop] + (["dev", dev] if dev else []))
    states = {s for entry in neigh if isinstance(neigh, list) for s in entry.get("state", [])}
    if states & DEAD:
        return f"{hop} does not answer ARP/ND on {dev} (neighbour {'/'.join(sorted(states))})"
    return None
