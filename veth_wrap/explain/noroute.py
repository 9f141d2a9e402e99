"""Routes that fail: none (a down interface, no address, a route nobody added) or a loop."""

from __future__ import annotations

import ipaddress

from veth_wrap.explain.findings import Candidate, Cause, Finding
from veth_wrap.explain.findings import PathWalk as Walk
from veth_wrap.explain.fixes import link_up
from veth_wrap.explain.lostaddress import no_address
from veth_wrap.explain.nets import Reach, address_of, label
from veth_wrap.explain.offpath import has_family, routers, same_subnet, wrong_device


def missing_route(walk: Walk, ns: str, error: str) -> Finding:
    """No route: a down interface, one without an address, or a route nobody added."""
    evidence = [f"ip -n {ns} route get {walk.target}: {error or 'no route'}"]
    down = _down_covering(walk, ns)
    if down:
        return Finding(Cause.LOCAL_DOWN, f"{down} in {ns} is down, so its route to "
                       f"{walk.target} is gone", evidence + [
                           (f"{down} has {', '.join(walk.nets.link(ns, down).addresses)} "
                            "but no UP flag")], [link_up(ns, down)])
    cands = walk.candidates(ns) or routers(walk, ns)
    if not cands:
        return _no_way(walk, ns, evidence)
    cand = cands[0]
    link = walk.nets.link(ns, cand.ifname)
    if not has_family(link.addresses, walk.family) and cand.via is None:
        return no_address(walk, ns, cand, evidence)
    cause = Cause.NO_RETURN_ROUTE if walk.reply else Cause.NO_ROUTE
    evidence.append(f"{cand.ifname} in {ns} leads to {label(cand.reach.ns)}"
                    + (f", which routes on via {cand.via}" if cand.via else
                       f", which has {walk.target}"))
    what = "replies cannot come back" if walk.reply else "packets cannot leave"
    return Finding(cause, f"{ns} has no route to {walk.target}: {what}", evidence,
                   walk.route_to(ns, _with_gateway(walk, ns, cand), None))


def _down_covering(walk: Walk, ns: str) -> str | None:
    wanted = ipaddress.ip_address(walk.target)
    for ifname, link in walk.nets.ns_links(ns).items():
        if not link.up and any(wanted in address_of(a).network for a in link.addresses):
            return ifname
    return None


def _with_gateway(walk: Walk, ns: str, cand: Candidate) -> Candidate:
    """Use the neighbour's address as gateway when the target is not on the link's subnet."""
    if cand.via:
        return cand
    wanted = ipaddress.ip_address(walk.target)
    mine = [address_of(a) for a in walk.nets.link(ns, cand.ifname).addresses]
    if any(wanted in m.network for m in mine):
        return cand
    via = same_subnet(walk, ns, cand.ifname, cand.reach)
    return Candidate(cand.ifname, cand.reach, via) if via else cand


def _no_way(walk: Walk, ns: str, evidence: list[str]) -> Finding:
    holders = walk.holding(walk.target, True)
    where = ", ".join(f"{label(h)} ({i})" for h, i in holders) or "no namespace on this host"
    evidence.append(f"{walk.target} is configured in: {where}")
    evidence.append(f"no interface of {ns} leads to a namespace that has {walk.target} or "
                    "routes to it")
    cause = Cause.NO_RETURN_ROUTE if walk.reply else Cause.NO_ROUTE
    return Finding(cause, f"{ns} has no route to {walk.target}, and no interface of {ns} "
                   "leads there", evidence)


def looping(walk: Walk, ns: str, route: dict, holder: Reach) -> Finding | None:
    """The next router sends the packets back into a namespace they crossed: a loop. Its route
    is the wrong one when another of its interfaces leads to the target."""
    onward = walk.nets.route_get(holder.ns, walk.target).route if holder.ns else None
    if onward is None or onward.get("type", "unicast") != "unicast":
        return None
    crossed = {v[0] for v in walk.visits}
    back = [r for r in walk.nets.reaches(holder.ns, onward.get("dev", ""))
            if r.ns in crossed and _routes_back(walk, r, onward.get("gateway"))]
    if not back:
        return None
    dev, gw = route.get("dev", ""), route.get("gateway")
    evidence = [f"ip -n {ns} route get {walk.target}: dev {dev}" + (f" via {gw}" if gw else ""),
                f"ip -n {holder.ns} route get {walk.target}: dev {onward.get('dev')}, back to "
                f"{label(back[0].ns)}: the packets loop until their hop limit runs out"]
    out = onward.get("dev", "")
    cands = walk.candidates(holder.ns, exclude=out) or routers(walk, holder.ns, exclude=out)
    if cands:
        return wrong_device(walk, holder.ns, onward, cands[0], evidence)
    return Finding(Cause.ROUTING_LOOP, f"the packets for {walk.target} loop between {ns} and "
                   f"{holder.ns}", evidence)


def _routes_back(walk: Walk, reach: Reach, gateway: str | None) -> bool:
    """Whether a crossed namespace takes the packet back up to its routing: not a bridge it
    only crosses (several LANs' bridges may share a hub), and the gateway's holder if any."""
    link = walk.nets.link(reach.ns, reach.ifname)
    if link is None or (link.kind == "bridge" and not link.addresses):
        return False
    return gateway is None or any(a.split("/")[0] == gateway for a in link.addresses)
