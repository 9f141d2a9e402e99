"""Follow a path that leaves by a VXLAN end: is the far host's underlay address reachable?

A lab over several hosts sends across hosts through VXLAN devices; the walk cannot follow a
packet into another kernel, so here the diagnosis reads where the device sends (its remote, or
a stretched bridge's all-zeros forwarding entries), then asks this host's root namespace, only
reading, whether its routes and neighbour table reach that address.
"""

from __future__ import annotations

from typing import Optional

from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.kernel import reader
from veth_wrap.model.names import MARK, Mark
from veth_wrap.run.runner import Runner

DEAD = {"FAILED", "INCOMPLETE"}


def tunnel_for(namespace: str, dest: str, runner: Runner) -> Optional[tuple[str, dict, list]]:
    """(device, its VXLAN data, the remotes) when the route to dest leaves by VXLAN."""
    route = reader.route_get(namespace, dest, runner).route
    if route is None:
        return None
    link = reader.links_shown(namespace, runner, "dev", route.get("dev"))
    if not link:
        return None
    found = _vxlan(namespace, link[0], runner)
    if found is None and (mark := Mark.parse(link[0].get("ifalias"))):
        hub = f"{MARK}-{mark.lab}"  # a member of a stretched bridge: its VXLAN is in the hub
        for port in reader.links_shown(hub, runner, "type", "vxlan") or []:
            found = found or _vxlan(hub, port, runner)
    return found


def _vxlan(ns: str, link: dict, runner: Runner) -> Optional[tuple[str, dict, list]]:
    info = link.get("linkinfo", {})
    if info.get("info_kind") != "vxlan" or "UP" not in link.get("flags", []):
        return None  # a VXLAN end that is down: the walk names that
    data = info.get("info_data", {})
    remotes = [data["remote"]] if data.get("remote") else []
    if not remotes:
        fdb = reader.fdb_of(ns, link["ifname"], runner) or []
        remotes = [e["dst"] for e in fdb if e.get("dst") and e.get("mac") == "00:00:00:00:00:00"]
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
    answer = reader.route_get(None, remote, runner, local)
    if answer.code:
        return f"ip route get {remote}: {answer.said or f'exit status {answer.code}'}"
    route = answer.route or {}
    hop, dev = route.get("gateway", remote), route.get("dev")
    neigh = reader.neighbours_to(None, hop, dev, runner) or []
    states = {s for entry in neigh for s in entry.get("state", [])}
    if states & DEAD:
        return f"{hop} does not answer ARP/ND on {dev} (neighbour {'/'.join(sorted(states))})"
    return None
