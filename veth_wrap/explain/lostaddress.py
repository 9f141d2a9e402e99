"""An interface that leads on but has no address: put back only what the path remembers."""

from __future__ import annotations

import ipaddress

from veth_wrap.explain.findings import Candidate, Cause, Finding
from veth_wrap.explain.findings import PathWalk as Walk
from veth_wrap.explain.fixes import ip_n, link_up, sysctl_fix
from veth_wrap.explain.nets import label, sysctl_ifname


def no_address(walk: Walk, ns: str, cand: Candidate, evidence: list[str]) -> Finding:
    """The interface that leads on has no address: restore the one the far side remembers
    (its neighbour entries and gateways), never a made-up one."""
    evidence.append(f"{cand.ifname} in {ns} leads to {label(cand.reach.ns)}, which has "
                    f"{walk.target}, but {cand.ifname} has no IPv{walk.family} address")
    net = ipaddress.ip_network(walk.target_net())
    link = walk.nets.link(ns, cand.ifname)
    off = v6_off(walk, ns, cand.ifname)
    known = _remembered(walk, ns, cand, net, evidence)
    found = Finding(Cause.IPV6_DISABLED if off else Cause.LOCAL_DOWN if not link.up
                    and walk.family == 6 else Cause.LOCAL_NO_ADDRESS,
                    f"{cand.ifname} in {ns} leads to {walk.target} but has no address"
                    + (" (IPv6 is disabled on it)" if off else " (it is down, and a link set "
                       "down loses its IPv6 addresses)" if not link.up and walk.family == 6
                       else ""), evidence)
    if known is None:
        evidence.append(f"nothing on the path says which address {cand.ifname} had: no fix "
                        f"(give it its address: ip -n {ns} addr add ADDRESS/{net.prefixlen} dev "
                        f"{cand.ifname})")
        return found
    if off:
        found.fix(sysctl_fix(ns, {k: "0" for k in off}), sysctl_fix(ns, off))
    text = f"{known}/{net.prefixlen}"
    found.fix(ip_n(ns, "addr", "add", text, "dev", cand.ifname,
                   *(["nodad"] if walk.family == 6 else [])),
              ip_n(ns, "addr", "del", text, "dev", cand.ifname))
    if not link.up:
        found.fix(link_up(ns, cand.ifname), None)
    found.adds = (ns, text)
    # the address is the packets' source only where they start, not on a router
    found.source = text if ns == walk.visits[0][0] else None
    return found


def v6_off(walk: Walk, ns: str, dev: str) -> dict[str, str]:
    if walk.family != 6:
        return {}
    keys = [f"net.ipv6.conf.{n}.disable_ipv6" for n in ("all", sysctl_ifname(dev))]
    return {k: v for k, v in walk.nets.sysctl(ns, *keys).items() if v == "1"}


def _remembered(walk: Walk, ns: str, cand: Candidate, net, evidence: list[str]) -> str | None:
    """The address the far side knows this interface by: a neighbour entry for an address of
    the network at its MAC, or a gateway of the far side's routes that nobody holds."""
    mac = (walk.nets.link(ns, cand.ifname).mac or "").lower()
    for reach in walk.nets.reaches(ns, cand.ifname):
        if reach.ns is None:
            continue
        for entry in walk.nets.neigh(reach.ns):
            dst = entry.get("dst", "")
            if entry.get("dev") == reach.ifname and entry.get("lladdr", "").lower() == mac \
                    and _in_net(dst, net) and dst != walk.target:
                evidence.append(f"{label(reach.ns)} remembers {dst} at {mac}, the MAC of "
                                f"{cand.ifname} (ip -j neigh on {reach.ifname})")
                return dst
        for route in walk.nets.routes.get(reach.ns, []):
            gw = route.get("gateway", "")
            if route.get("dev") == reach.ifname and _in_net(gw, net) \
                    and not walk.holding(gw):
                evidence.append(f"{label(reach.ns)} routes {route.get('dst')} via {gw} on "
                                f"{reach.ifname}, and nothing holds {gw}")
                return gw
    return None


def _in_net(address: str, net) -> bool:
    try:
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False
