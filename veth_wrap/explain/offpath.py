"""Why a hop leads nowhere: no route, a wrong device, a lost peer, a missing address."""

from __future__ import annotations

import ipaddress

from veth_wrap.explain.findings import Candidate, Cause, Finding
from veth_wrap.explain.findings import PathWalk as Walk
from veth_wrap.explain.fixes import Fix, ip_n, link_up, route_fix, sysctl_fix
from veth_wrap.explain.lostaddress import no_address, v6_off
from veth_wrap.explain.nets import (
    Ns,
    Peer,
    Reach,
    address_of,
    label,
    matching_route,
    sysctl_ifname,
)


def off_path(walk: Walk, ns: str, route: dict, reaches: list[Reach]) -> Finding:
    """The route leaves by a device whose far side does not hold the next hop."""
    dev, gw = route.get("dev", ""), route.get("gateway")
    evidence = [f"ip -n {ns} route get {walk.target}: dev {dev}" + (f" via {gw}" if gw else ""),
                _carrier_text(walk, ns, dev)] + _beyond(walk, ns, dev, reaches)
    disabled = _ipv6_disabled(walk, ns, dev, reaches, evidence, gw or walk.target)
    if disabled:
        return disabled
    cands = walk.candidates(ns, exclude=dev) or routers(walk, ns, exclude=dev)
    if cands:
        return wrong_device(walk, ns, route, cands[0], evidence)
    if gw:
        return _gateway(walk, ns, route, reaches, evidence)
    for check in (_detached_port, _misplaced_peer, _not_configured, _peer_down):
        found = check(walk, ns, dev, reaches, evidence)
        if found:
            return found
    link = walk.nets.link(ns, dev)
    if link is not None and not link.carrier:
        return Finding(Cause.NO_CARRIER, f"{dev} in {ns} has no carrier: nothing is connected "
                       f"to it, and no other interface of {ns} leads to {walk.target}", evidence)
    return Finding(Cause.ROUTE_WRONG_DEVICE, f"the route to {walk.target} in {ns} leaves by "
                   f"{dev}, and nothing beyond {dev} carries {walk.target}", evidence)


def _carrier_text(walk: Walk, ns: str, dev: str) -> str:
    link = walk.nets.link(ns, dev)
    if link is None:
        return f"{dev} is not in {ns}"
    kind = {"tun": "a tun/tap device"}.get(link.kind, f"a {link.kind or 'link'}")
    state = "has carrier" if link.carrier else "has NO carrier"
    return f"{dev} in {ns} is {kind}, {'UP' if link.up else 'DOWN'}, {state} " \
           f"(operstate {link.operstate})"


def _beyond(walk: Walk, ns: str, dev: str, reaches: list[Reach]) -> list[str]:
    if not reaches:
        peer = walk.nets.peer(ns, dev)
        if peer is None:
            return [f"nothing is known to be connected to {dev}"]
        return [f"the peer of {dev} is {peer.ifname} in {_where(peer)}"]
    lines = []
    for reach in reaches:
        link = walk.nets.link(reach.ns, reach.ifname)
        addrs = ", ".join(link.addresses) if link and link.addresses else "no address"
        lines.append(f"beyond {dev}: {reach.ifname} in {label(reach.ns)} ({addrs})")
    return lines


def _where(peer: Peer) -> str:
    if peer.where == "unnamed":
        return f"a namespace with no name under /run/netns (nsid {peer.nsid})"
    return label(peer.ns)


def wrong_device(walk: Walk, ns: str, route: dict, cand: Candidate, evidence: list[str]):
    if not has_family(walk.nets.link(ns, cand.ifname).addresses, walk.family) and \
            cand.via is None and v6_off(walk, ns, cand.ifname):
        return no_address(walk, ns, cand, evidence)  # a route cannot use it before that
    dev = route.get("dev")
    evidence.append(f"{cand.ifname} in {ns} leads to {label(cand.reach.ns)}, which "
                    + (f"routes on to {walk.target} (via {cand.via})" if cand.via else
                       f"has {walk.target}"))
    cause = Cause.ROUTE_WRONG_DEVICE
    what = "replies to" if walk.reply else "packets for"
    return Finding(cause, f"{what} {walk.target} leave {ns} by {dev}, which does not lead "
                   f"there; {cand.ifname} does", evidence, walk.route_to(ns, cand, route))


def _gateway(walk: Walk, ns: str, route: dict, reaches: list[Reach], evidence: list[str]):
    dev, gw = route.get("dev", ""), route.get("gateway")
    evidence.append(f"no interface beyond {dev} has {gw}")
    via = _usable_gateway(walk, ns, dev, reaches)
    fixes = [] if via is None else walk.route_to(ns, Candidate(dev, via[0], via[1]), route)
    return Finding(Cause.GATEWAY_UNREACHABLE, f"the gateway {gw} of the route to "
                   f"{walk.target} in {ns} is not on the far side of {dev}", evidence, fixes)


def _usable_gateway(walk: Walk, ns: str, dev: str, reaches: list[Reach]):
    """A neighbour beyond dev, on dev's subnet, that has the target or routes to it."""
    for reach in reaches:
        address = same_subnet(walk, ns, dev, reach)
        if address is None:
            continue
        if walk.holds_addr(reach.ns, walk.target) or (reach.ns is not None and _routes_on(
                walk, reach)):
            return reach, address
    return None


def _routes_on(walk: Walk, reach: Reach) -> bool:
    route = walk.nets.route_get(reach.ns, walk.target).route
    return route is not None and route.get("dev") != reach.ifname


def same_subnet(walk: Walk, ns: Ns, dev: str, reach: Reach) -> str | None:
    """A neighbour's address on dev's subnet, of the walk's IP version (a gateway must be)."""
    mine = [address_of(a) for a in walk.nets.link(ns, dev).addresses
            if address_of(a).version == walk.family]
    far = walk.nets.link(reach.ns, reach.ifname)
    for text in far.addresses if far else ():
        theirs = address_of(text)
        if any(theirs.ip in m.network and theirs.ip != m.ip for m in mine):
            return str(theirs.ip)
    return None


def _detached_port(walk: Walk, ns: str, dev: str, reaches: list[Reach], evidence: list[str]):
    """A veth in a bridge's namespace that leads to the target but is in no bridge."""
    peer = walk.nets.peer(ns, dev)
    if peer is None or peer.where == "unnamed":
        return None
    hub_links = walk.nets.ns_links(peer.ns)
    bridges = [ln.ifname for ln in hub_links.values() if ln.kind == "bridge"]
    own = hub_links.get(peer.ifname)
    if not bridges or own is None:
        return None
    if not own.master:  # our own port is the loose one: which bridge leads on?
        for bridge in bridges:
            if any(walk.holds_addr(r.ns, walk.target) for r in walk.nets.reaches(peer.ns, bridge)):
                return _detached(walk, peer.ns, peer.ifname, bridge, evidence)
        return None
    for port, link in hub_links.items():
        if link.kind == "veth" and not link.master and port != peer.ifname:
            far = walk.nets.peer(peer.ns, port)
            if far and far.where != "unnamed" and walk.holds_addr(far.ns, walk.target):
                return _detached(walk, peer.ns, port, own.master, evidence)
    return None


def _detached(walk: Walk, hub: Ns, port: str, bridge: str, evidence: list[str]) -> Finding:
    link = walk.nets.link(hub, port)
    evidence.append(f"{port} in {label(hub)} leads to {walk.target} but has no master: "
                    f"it is not a port of {bridge}")
    fixes: list[Fix] = [ip_n(hub, "link", "set", "dev", port, "master", bridge)]
    if not link.up:
        fixes.append(link_up(hub, port))
    return Finding(Cause.BRIDGE_PORT_DETACHED, f"{port} in {label(hub)} is not attached to "
                   f"bridge {bridge}", evidence, fixes)


def _misplaced_peer(walk: Walk, ns: str, dev: str, reaches: list[Reach], evidence: list[str]):
    """The veth's other end is in another namespace than the one that has the target."""
    peer = walk.nets.peer(ns, dev)
    if peer is not None and peer.where != "unnamed" and _configured_for(walk, peer):
        return None  # the far end is set up for the target's network: only the address is missing
    everywhere = [h for h in walk.holding(walk.target, True) if h[0] != ns]
    holders = _same_lab(walk, ns, everywhere)
    if peer is None or not everywhere or (holders and peer.where == "named"
                                          and peer.ns == holders[0][0]):
        return None
    if not holders:  # a namespace no link or mark ties to this lab is nobody's to move into
        return None
    if len({h[0] for h in holders}) > 1:  # which one was meant is the operator's call
        where = ", ".join(f"{label(h)} ({i})" for h, i in holders)
        evidence.append(f"{walk.target} is held by {len(holders)} namespaces not linked to "
                        f"{label(ns)}: {where}; the peer of {dev} is {peer.ifname} in "
                        f"{_where(peer)}")
        cause = Cause.PEER_NO_NETNS if peer.where != "named" else Cause.PEER_WRONG_NETNS
        return Finding(cause, f"the peer of {dev} is not in a namespace holding {walk.target}, "
                       "and more than one namespace holds it: no fix is printed (move the peer "
                       "into the one you mean)", evidence, [], reply_done=True)
    home = holders[0][0]
    evidence.append(f"{walk.target} is in {label(home)} (on {holders[0][1]}), but the peer of "
                    f"{dev} is {peer.ifname} in {_where(peer)}")
    if peer.where == "unnamed":
        return Finding(Cause.PEER_NO_NETNS, f"the peer of {dev} is in a namespace with no name, "
                       f"not in {label(home)}", evidence, _recreate(walk, ns, dev, home),
                       reply_done=True)
    moved = [ip_n(peer.ns, "link", "set", "dev", peer.ifname, "netns", home),
             *[ip_n(home, "addr", "add", a, "dev", peer.ifname)
               for a in walk.nets.link(peer.ns, peer.ifname).addresses],
             link_up(home, peer.ifname), *_reply_route(walk, ns, home, peer.ifname)]
    cause = Cause.PEER_NO_NETNS if peer.where == "root" else Cause.PEER_WRONG_NETNS
    return Finding(cause, f"the peer of {dev} is {peer.ifname} in {_where(peer)}, not in "
                   f"{label(home)} where {walk.target} is", evidence, moved, reply_done=True)


def _ipv6_disabled(walk: Walk, ns: str, dev: str, reaches: list[Reach], evidence: list[str],
                   hop: str):
    """IPv6 switched off beyond a point-to-point link: the far end lost its IPv6 addresses
    (the kernel drops them) and drops IPv6 arriving on it (IPV6DISABLED). The next hop's
    address (the gateway, or the target) is put back when nobody holds it."""
    if walk.family != 6 or len(reaches) != 1 or reaches[0].ns is None:
        return None
    far = reaches[0]
    keys = [f"net.ipv6.conf.{n}.disable_ipv6" for n in ("all", sysctl_ifname(far.ifname))]
    values = walk.nets.sysctl(far.ns, *keys)
    on = {k: v for k, v in values.items() if v == "1"}
    if not on:
        return None
    evidence += [f"{k} = 1 in {far.ns}" for k in on] + [
        f"{far.ifname} in {far.ns} has no IPv6 address: setting disable_ipv6 removed them"]
    found = Finding(Cause.IPV6_DISABLED, f"IPv6 is disabled on {far.ifname} in {far.ns}, the "
                    f"far end of {dev}", evidence, namespace=far.ns, decided_by="sysctl")
    found.fix(sysctl_fix(far.ns, {k: "0" for k in on}), sysctl_fix(far.ns, on))
    plen = _prefix_for(walk, ns, dev, hop)
    held = _same_lab(walk, ns, [h for h in walk.holding(hop, True) if h[0] != ns])
    if plen is not None and not held:  # in the link's network, as it was
        addr = ip_n(far.ns, "addr", "add", f"{hop}/{plen}", "dev", far.ifname, "nodad")
        found.fix(addr, ip_n(far.ns, "addr", "del", f"{hop}/{plen}", "dev", far.ifname))
    return found


def _configured_for(walk: Walk, peer: Peer) -> bool:
    """True when the peer's interface has an address in the target's network."""
    link = walk.nets.link(peer.ns, peer.ifname)
    wanted = ipaddress.ip_address(walk.target)
    return any(wanted in address_of(a).network for a in (link.addresses if link else ()))


def _same_lab(walk: Walk, ns: str, holders: list) -> list:
    """The holders a fix may lead to: in the source's own vethwrap lab (by the kernel's marks),
    or linked to the start by veths; a namespace of another lab, or of none, never counts."""
    labs = _labs(walk, ns)
    linked = set(walk.nets.connected())
    return [h for h in holders if h[0] is not None and h[1] and (
        h[0] in linked or labs & _labs(walk, h[0]))]


def _labs(walk: Walk, ns: Ns) -> set[str]:
    return {ln.mark.lab for ln in walk.nets.ns_links(ns).values() if ln.mark}


def _recreate(walk: Walk, ns: str, dev: str, home: Ns) -> list[Fix]:
    """Replace a veth whose peer is out of reach with a new pair into the right namespace."""
    link = walk.nets.link(ns, dev)
    other = (dev[:12] + "-pr")[:15]
    return [ip_n(ns, "link", "del", "dev", dev),
            ip_n(ns, "link", "add", "name", dev, "type", "veth", "peer", "name", other,
                 "netns", home),
            *[ip_n(ns, "addr", "add", a, "dev", dev) for a in link.addresses],
            link_up(ns, dev), link_up(home, other), *_reply_route(walk, ns, home, other)]


def _reply_route(walk: Walk, ns: str, home: Ns, new_dev: str) -> list[Fix]:
    """After moving an end into home, the route back from home to the source must use it."""
    source = walk.source
    if not source or home is None:
        return []
    back = walk.nets.route_get(home, source).route
    if back is not None and back.get("dev") != new_dev and any(
            walk.nets.holds(r.ns, source) for r in walk.nets.reaches(home, back.get("dev"))):
        return []
    net = _net_of(walk, ns, source)
    return [route_fix(home, net, new_dev, None, back, walk.nets.routes.get(home, []), source)]


def _net_of(walk: Walk, ns: Ns, address: str) -> str:
    for link in walk.nets.ns_links(ns).values():
        for text in link.addresses:
            if address_of(text).ip == ipaddress.ip_address(address):
                return str(address_of(text).network)
    return str(ipaddress.ip_network(address))


def _not_configured(walk: Walk, ns: str, dev: str, reaches: list[Reach], evidence: list[str]):
    """Nothing this lab reaches carries the target: say which addresses are there, change
    nothing (adding the address would invent a host; the address was most likely mistyped)."""
    everywhere = [h for h in walk.holding(walk.target, True) if h[0] != ns]
    if not reaches or _same_lab(walk, ns, everywhere):
        return None  # held in this lab, or nothing beyond dev: the other checks say why
    evidence.append(f"no interface of this lab has {walk.target} ({len(walk.nets.names)} "
                    "namespaces searched)")
    if everywhere:
        evidence.append(f"{walk.target} is held only where no link from {label(ns)} leads and "
                        "no mark ties to this lab (another lab): "
                        + ", ".join(f"{label(h)} ({i})" for h, i in everywhere))
    back = _restore_far(walk, ns, dev, reaches, evidence)
    if back is not None:
        return back
    near = _addresses_near(walk, ns, dev, reaches)
    hint = f": did you mean {' or '.join(near)}?" if near else ""
    if near:
        evidence.append(f"the namespaces beyond {dev} hold {', '.join(near)} in that network")
    for reach in reaches if not near else ():
        link = walk.nets.link(reach.ns, reach.ifname)
        if link is not None and reach.ns != ns and not has_family(link.addresses, walk.family):
            evidence.append(f"{reach.ifname} in {label(reach.ns)} has no IPv{walk.family} "
                            "address: it was never given one, or it was moved there (a move "
                            "drops an interface's addresses)")
    return Finding(Cause.DEST_NOT_CONFIGURED, f"{walk.target} is not configured on any "
                   f"interface beyond {dev}{hint}", evidence)


def _restore_far(walk: Walk, ns: str, dev: str, reaches: list[Reach], evidence: list[str]):
    """The far end of a point-to-point link lost the target (a link set down loses its IPv6
    addresses): put it back when the lab's marks say the end is in its lab's namespace, and the
    link's network or the near side's neighbour entry says the target was the far end's."""
    plen = _prefix_for(walk, ns, dev)
    if len(reaches) != 1 or len(reaches[0].path) != 1 or reaches[0].ns is None or plen is None:
        return None
    far = reaches[0]
    link = walk.nets.link(far.ns, far.ifname)
    home = {ln.mark.lab for name, ln in walk.nets.ns_links(far.ns).items()
            if ln.mark and name != far.ifname}
    if link is None or link.mark is None or link.mark.lab not in home:
        return None
    mac = (link.mac or "").lower()
    seen = any(e.get("dst") == walk.target and e.get("lladdr", "").lower() == mac
               for e in walk.nets.neigh(ns))
    if not seen and plen < (30 if walk.family == 4 else 126):
        return None
    evidence.append(f"{far.ifname} in {far.ns} is lab {link.mark.lab}'s, in a namespace of that "
                    "lab, and " + (f"{label(ns)} remembers {walk.target} at its MAC" if seen else
                                   f"{walk.target} is the only other address of the /{plen} "
                                   "link"))
    text = f"{walk.target}/{plen}"
    found = Finding(Cause.PEER_DOWN if not link.up else Cause.DEST_NOT_CONFIGURED,
                    f"{far.ifname} in {far.ns}, the far end of {dev}, lost {walk.target}"
                    + (" when it was set down" if not link.up else ""), evidence)
    found.fix(ip_n(far.ns, "addr", "add", text, "dev", far.ifname,
                   *(["nodad"] if walk.family == 6 else [])),
              ip_n(far.ns, "addr", "del", text, "dev", far.ifname))
    return found.fix(link_up(far.ns, far.ifname), None) if not link.up else found


def _addresses_near(walk: Walk, ns: str, dev: str, reaches: list[Reach]) -> list[str]:
    """The addresses beyond dev in the network of dev's own address for the target."""
    wanted = ipaddress.ip_address(walk.target)
    route = matching_route(walk.nets.routes.get(ns, []), walk.target, dev)
    nets = [address_of(a).network for link in walk.nets.ns_links(ns).values()
            for a in link.addresses if address_of(a).version == walk.family
            and wanted in address_of(a).network]
    if route is not None and route.get("dst") != "default":
        nets.append(ipaddress.ip_network(route["dst"], strict=False))
    found = []
    for reach in reaches:  # any interface of theirs: the kernel answers for all its addresses
        for link in walk.nets.ns_links(reach.ns).values() if reach.ns != ns else ():
            for text in link.addresses:
                held = address_of(text)
                if any(held.ip in n for n in nets) and not held.ip.is_link_local:
                    found.append(f"{held.ip} ({label(reach.ns)})")
    return list(dict.fromkeys(found))


def _prefix_for(walk: Walk, ns: str, dev: str, address: str = "") -> int | None:
    wanted = ipaddress.ip_address(address or walk.target)
    for text in walk.nets.link(ns, dev).addresses:
        if wanted in address_of(text).network:
            return address_of(text).network.prefixlen
    return None


def _peer_down(walk: Walk, ns: str, dev: str, reaches: list[Reach], evidence: list[str]):
    peer = walk.nets.peer(ns, dev)
    link = walk.nets.link(peer.ns, peer.ifname) if peer and peer.where != "unnamed" else None
    if link is None or link.up:
        return None
    return Finding(Cause.PEER_DOWN, f"the peer end {peer.ifname} in {label(peer.ns)} is down",
                   evidence + [f"{peer.ifname} in {label(peer.ns)} has no UP flag"],
                   [link_up(peer.ns, peer.ifname)])


def has_family(addresses, family: int) -> bool:
    return any(address_of(a).version == family for a in addresses)


def routers(walk: Walk, ns: str, exclude: str = "") -> list[Candidate]:
    """Neighbours on a shared subnet that have a route on to the target."""
    for ifname, link in walk.nets.ns_links(ns).items():
        if ifname in ("lo", exclude) or link.master or not link.up:
            continue
        for reach in walk.nets.reaches(ns, ifname):
            via = same_subnet(walk, ns, ifname, reach)
            if via and reach.ns is not None and _routes_on(walk, reach):
                walk.note(f"{reach.ns} (via {via}) has a route to {walk.target}")
                return [Candidate(ifname, reach, via)]
    return []
