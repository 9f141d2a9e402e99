"""What the kernel says about one hop: the route's type, neighbours, ARP, bridge ports, sysctls.

Each check returns findings the walk can go past (it names what to undo; the packets would
go on once it is undone), so that one diagnosis names every cause on the round trip.
"""

from __future__ import annotations

import ipaddress

from veth_wrap.explain.bridgeflags import bridge_decision
from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.findings import PathWalk as Walk
from veth_wrap.explain.fixes import ip_n, sysctl_fix
from veth_wrap.explain.nets import Ns, Reach, address_of, label, sysctl_ifname
from veth_wrap.explain.routing import Block, lookup

PING_BYTES = {4: 84, 6: 104}  # a default echo request: 56 bytes of data, ICMP and IP headers
PORT_STATES = {"disabled": "0", "listening": "1", "learning": "2", "forwarding": "3",
               "blocking": "4"}
_ROUTE_CAUSES = {"blackhole": Cause.ROUTE_BLACKHOLE, "unreachable": Cause.ROUTE_UNREACHABLE,
                 "prohibit": Cause.ROUTE_PROHIBIT, "throw": Cause.ROUTE_THROW}


def _found(walk: Walk, ns: Ns, cause: Cause, summary: str, evidence: list[str],
           decided_by: str) -> Finding:
    return Finding(cause, summary, evidence, namespace=ns, passable=True,
                   direction="reply" if walk.reply else "forward", decided_by=decided_by)


def blocked(walk: Walk, ns: str, error: str, src: str | None,
            iif: str | None) -> tuple[list[Finding], dict | None]:
    """Name the rules and routes that refused the lookup, and the route reached past them."""
    rules, routes = walk.nets.policy(ns, walk.family)
    result = lookup(rules, routes, walk.target, src, iif, walk.family)
    walk.note(f"{label(ns)}: {len(rules)} policy rules, {len(routes)} routes in all tables: "
              + (", ".join(b.text for b in result.blocks) or "nothing blocks")
              + (f"; then table {result.table}: {result.route.get('dst')} dev "
                 f"{result.route.get('dev')}" if result.route else ""))
    return [_block_finding(walk, ns, block, error) for block in result.blocks], result.route


def _block_finding(walk: Walk, ns: str, block: Block, error: str) -> Finding:
    cause = Cause.RULE_BLOCKS if block.kind == "rule" else _ROUTE_CAUSES[block.action]
    what = "replies to" if walk.reply else "packets for"
    found = _found(walk, ns, cause, f"{block.text} in {ns} refuses {what} {walk.target}",
                   [f"ip -n {ns} route get {walk.target}: {error or 'refused'}",
                    f"the kernel's lookup in {ns} meets {block.text} (read with ip -j "
                    + ("rule list)" if block.kind == "rule" else "route show table all)")],
                   "rule" if block.kind == "rule" else "route")
    return found.fix(ip_n(ns, *block.fix), ip_n(ns, *block.undo))


def hop(walk: Walk, ns: Ns, dev: str, reach: Reach, address: str) -> list[Finding]:
    """The link from dev in ns to the interface beyond it that holds the hop's address."""
    found = _mtu(walk, [(ns, dev), *reach.path]) + _noarp(walk, ns, dev, "near")
    found += _bridge_ports(walk, reach)
    if not any(f.cause is Cause.BRIDGE_PORT_STATE for f in found):
        found += bridge_decision(walk, reach)
    found += _noarp(walk, reach.ns, reach.ifname, "far")
    found += _neighbour(walk, ns, dev, reach, address)
    if walk.family == 4 and reach.ns is not None:
        found += _arp_answers(walk, ns, dev, reach, address)
    return found


def _mtu(walk: Walk, devices: list[tuple[Ns, str]]) -> list[Finding]:
    """A device on the hop whose MTU is below a default ping's packet (veth drops what is
    longer than the receiver's MTU)."""
    size = PING_BYTES[walk.family]
    found = []
    for ns, dev in devices:
        link = walk.nets.link(ns, dev)
        mtu = int(link.raw.get("mtu", 0)) if link else 0
        if not mtu or mtu >= size:
            continue
        want = max(int((walk.nets.link(n, d).raw if walk.nets.link(n, d) else {}).get("mtu", 0))
                   for n, d in devices)
        item = _found(walk, ns, Cause.MTU_TOO_SMALL,
                      f"{dev} in {label(ns)} has MTU {mtu}, below the {size} bytes of an echo "
                      "request", [f"ip -j link: {dev} in {label(ns)} mtu {mtu}; the others on "
                                  f"the hop have up to {want}",
                                  "a veth drops what is longer than its receiver's MTU"], "link")
        if want >= size:
            item.fix(ip_n(ns, "link", "set", "dev", dev, "mtu", str(want)),
                     ip_n(ns, "link", "set", "dev", dev, "mtu", str(mtu)))
        found.append(item)
    return found


def _noarp(walk: Walk, ns: Ns, dev: str, side: str) -> list[Finding]:
    link = walk.nets.link(ns, dev)
    if link is None or "NOARP" not in link.raw.get("flags", []) or link.kind == "bridge" \
            and side == "far":
        return []
    why = ("sends every packet to its own MAC address, so the far end drops it" if side == "near"
           else "answers no ARP or neighbour solicitation, so nothing can reach its address")
    found = _found(walk, ns, Cause.NOARP, f"{dev} in {label(ns)} has ARP off (NOARP)",
                   [f"{dev} in {label(ns)} has flags {','.join(link.raw.get('flags', []))}",
                    f"a link without ARP {why}"], "link")
    return [found.fix(ip_n(ns, "link", "set", "dev", dev, "arp", "on"),
                      ip_n(ns, "link", "set", "dev", dev, "arp", "off"))]


def _bridge_ports(walk: Walk, reach: Reach) -> list[Finding]:
    found = []
    for pns, pdev in reach.path:
        link = walk.nets.link(pns, pdev)
        if link is None or not link.master or not link.up:
            continue
        info = link.raw.get("linkinfo", {})
        if info.get("info_slave_kind") != "bridge":
            continue
        port_state = info.get("info_slave_data", {}).get("state", "forwarding")
        if port_state == "forwarding":
            continue
        bridge = walk.nets.link(pns, link.master)
        data = bridge.raw.get("linkinfo", {}).get("info_data", {}) if bridge else {}
        stp = data.get("stp_state", 0)
        loops = stp and _may_loop(walk, pns, link.master)
        evidence = [f"ip -d link: {pdev} in {label(pns)} has bridge port state {port_state}"]
        if stp:
            evidence.append(f"{link.master} runs STP (forward_delay {data.get('forward_delay')}"
                            " cs), which sets its ports' states itself"
                            + (": a port of it leads to another bridge, so STP may be "
                               "guarding a loop and no fix is printed" if loops else
                               "; every port leads to an end host, so no loop needs it"))
        item = _found(walk, pns, Cause.BRIDGE_PORT_STATE,
                      f"port {pdev} of bridge {link.master} in {label(pns)} is {port_state}: "
                      "it forwards nothing", evidence, "bridge")
        if not loops and port_state in PORT_STATES:
            if stp:
                set_stp = ip_n(pns, "link", "set", "dev", link.master, "type", "bridge",
                               "stp_state")
                item.fix([*set_stp, "0"], [*set_stp, str(stp)])
            argv = ["bridge", *(["-n", pns] if pns else []), "link", "set", "dev", pdev]
            item.fix([*argv, "state", "3"], [*argv, "state", PORT_STATES[port_state]])
        found.append(item)
    return found


def _may_loop(walk: Walk, ns: Ns, bridge: str) -> bool:
    """True when a port of the bridge leads to another bridge (where a loop could close)."""
    for port in walk.nets.bridge_ports(ns, bridge):
        peer = walk.nets.peer(ns, port)
        if peer is None or peer.where == "unnamed":
            return True  # cannot tell what is beyond: assume STP is needed
        far = walk.nets.link(peer.ns, peer.ifname)
        if far is None or far.master or far.kind == "bridge":
            return True
    return False


def _neighbour(walk: Walk, ns: Ns, dev: str, reach: Reach, address: str) -> list[Finding]:
    """A neighbour entry for the hop's address whose MAC is not the answering interface's.

    The kernel answers ARP and neighbour solicitations for any of its addresses with the MAC
    of the interface the request arrives on (the weak host model), not of the device holding
    the address: the MAC to expect is that of the far end of the link."""
    holder = walk.nets.link(reach.ns, reach.ifname)
    want = (holder.mac if holder else "").lower()
    for entry in walk.nets.neigh(ns):
        if entry.get("dst") != address or entry.get("dev") != dev:
            continue
        states = entry.get("state", [])
        walk.note(f"{label(ns)}: neighbour {address} on {dev}: {entry.get('lladdr', '-')} "
                  f"{','.join(states)}")
        have = entry.get("lladdr", "").lower()
        if not have or not want or have == want:
            return []
        item = _found(walk, ns, Cause.NEIGH_WRONG_MAC,
                      f"the neighbour entry for {address} on {dev} in {label(ns)} has the "
                      f"wrong MAC address",
                      [f"ip -j neigh in {label(ns)}: {address} lladdr {have} "
                       f"{','.join(states)} on {dev}",
                       f"{address} is answered by {holder.ifname} in {label(reach.ns)}, where "
                       f"the requests arrive (its MAC is {want})"
                       + _held_elsewhere(walk, reach, address)], "neigh")
        if "PERMANENT" in states:
            base = ["neigh", "replace", address, "lladdr"]
            return [item.fix(ip_n(ns, *base, want, "dev", dev, "nud", "permanent"),
                             ip_n(ns, *base, have, "dev", dev, "nud", "permanent"))]
        return [item.fix(ip_n(ns, "neigh", "del", address, "dev", dev), [])]
    return []


def _held_elsewhere(walk: Walk, reach: Reach, address: str) -> str:
    held = walk.nets.holds(reach.ns, address)
    if not held or held == reach.ifname:
        return ""
    return f"; the address is on {held}, and the kernel answers for it on any interface"


def _arp_answers(walk: Walk, ns: Ns, dev: str, reach: Reach, address: str) -> list[Finding]:
    """arp_ignore and arp_filter on the far side: does it answer who-has for address?"""
    far, iif = reach.ns, reach.ifname
    name = sysctl_ifname(iif)
    keys = [f"net.ipv4.conf.{scope}.{what}" for what in ("arp_ignore", "arp_filter")
            for scope in ("all", name)]
    values = walk.nets.sysctl(far, *keys)
    ignore = max(_int(values[keys[0]]), _int(values[keys[1]]))
    on_iif = walk.nets.holds(far, address) == iif
    sender, announce = _arp_sender(walk, ns, dev, address)
    primary = _sender_address(walk, ns, dev, address)
    bad = ignore >= 8 or (ignore in (1, 2) and not on_iif) or (
        ignore == 2 and sender is not None and not _same_subnet(walk, far, iif, sender))
    found = []
    if bad and ignore == 2 and on_iif and announce < 2 and primary not in (None, sender) \
            and _same_subnet(walk, far, iif, primary):
        key = f"net.ipv4.conf.{sysctl_ifname(dev)}.arp_announce"
        item = _found(walk, ns, Cause.ARP_ANNOUNCE,
                      f"{label(ns)} asks who-has {address} from {sender} (arp_announce = "
                      f"{announce}), which {far} ignores (arp_ignore = 2 on {iif})",
                      [f"arp_announce = {announce} (max of all and {dev}) in {label(ns)}: the ARP "
                       f"request carries the packets' source {sender}",
                       f"arp_ignore = 2 in {far}: it answers only senders in the subnet of "
                       f"{iif}, which {sender} is not ({primary} is)"], "sysctl")
        old_value = walk.nets.sysctl(ns, key)[key] or "0"
        found.append(item.fix(sysctl_fix(ns, {key: "2"}), sysctl_fix(ns, {key: old_value})))
        bad = False
    if bad:
        item = _found(walk, far, Cause.ARP_IGNORE,
                      f"{far} does not answer ARP for {address} on {iif} (arp_ignore = {ignore})",
                      [f"{k} = {values[k]} in {far}" for k in keys[:2]]
                      + [f"{address} is on {walk.nets.holds(far, address)}; the ARP request "
                         f"comes in on {iif}"], "sysctl")
        found.append(_sysctl_back(item, far, {k: values[k] for k in keys[:2]
                                              if _int(values[k]) == ignore}, "0"))
    if "1" in (values[keys[2]], values[keys[3]]) and sender is not None:
        back = walk.nets.route_get(far, sender).route
        if back is not None and back.get("dev") != iif:
            item = _found(walk, far, Cause.ARP_FILTER,
                          f"arp_filter in {far} refuses ARP on {iif}: its route to {sender} "
                          f"leaves by {back.get('dev')}",
                          [f"{k} = {values[k]} in {far}" for k in keys[2:]], "sysctl")
            found.append(_sysctl_back(item, far, {k: values[k] for k in keys[2:]
                                                  if values[k] == "1"}, "0"))
    return found


def _sysctl_back(item: Finding, ns: str, old: dict[str, str], value: str) -> Finding:
    return item.fix(sysctl_fix(ns, {k: value for k in old}), sysctl_fix(ns, old))


def _int(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


def _sender_address(walk: Walk, ns: Ns, dev: str, target: str = "") -> str | None:
    """The address of dev the kernel picks for ARP: one in the target's subnet, else the
    first."""
    link = walk.nets.link(ns, dev)
    found = [address_of(t) for t in (link.addresses if link else ()) if address_of(t).version == 4]
    same = [a for a in found if target and ipaddress.ip_address(target) in a.network]
    return str((same or found)[0].ip) if found else None


def _arp_sender(walk: Walk, ns: Ns, dev: str, target: str) -> tuple[str | None, int]:
    """(the sender address of ns's ARP requests on dev for target, arp_announce in force)."""
    keys = [f"net.ipv4.conf.{n}.arp_announce" for n in ("all", sysctl_ifname(dev))]
    announce = max(_int(v) for v in walk.nets.sysctl(ns, *keys).values()) if ns else 0
    primary = _sender_address(walk, ns, dev, target)
    src = (walk.source or "").split("/")[0]
    if ns is None or not src or ns != walk.visits[0][0] or not walk.nets.holds(ns, src):
        return primary, announce  # forwarded packets: their source is not ours to announce
    if announce == 0 or (announce == 1 and _same_subnet(walk, ns, dev, src)):
        return src, announce
    return primary, announce


def _same_subnet(walk: Walk, ns: Ns, dev: str, address: str) -> bool:
    link = walk.nets.link(ns, dev)
    wanted = ipaddress.ip_address(address)
    return any(wanted in address_of(a).network for a in (link.addresses if link else ()))


def at_destination(walk: Walk, ns: str, iif: str | None) -> list[Finding]:
    """The destination itself: does it answer echo requests, and is its address usable?"""
    if walk.reply:
        return []
    target = ipaddress.ip_address(walk.target)
    found = []
    if walk.family == 4:
        keys = ["net.ipv4.icmp_echo_ignore_all", "net.ipv4.icmp_echo_ignore_broadcasts"]
    else:
        keys = ["net.ipv6.icmp.echo_ignore_all"]
    values = walk.nets.sysctl(ns, *keys)
    on = [k for k in keys[:1] if values[k] == "1"]
    if walk.family == 4 and values[keys[1]] == "1" and _is_broadcast(walk, ns, target):
        on.append(keys[1])
    if on:
        item = _found(walk, ns, Cause.ECHO_IGNORED, f"{ns} ignores echo requests",
                      [f"{k} = 1 in {ns}" for k in on], "sysctl")
        found.append(_sysctl_back(item, ns, {k: "1" for k in on}, "0"))
    found += _dad(walk, ns)
    return found


def _is_broadcast(walk: Walk, ns: str, target) -> bool:
    return any(address_of(a).version == 4 and address_of(a).network.broadcast_address == target
               for link in walk.nets.ns_links(ns).values() for a in link.addresses)


def _dad(walk: Walk, ns: str) -> list[Finding]:
    """An IPv6 address that failed duplicate address detection cannot be used."""
    for link in walk.nets.ns_links(ns).values():
        for info in link.raw.get("addr_info", []):
            if info.get("local") != walk.target or not info.get("dadfailed"):
                continue
            text = f"{info['local']}/{info['prefixlen']}"
            item = _found(walk, ns, Cause.DAD_FAILED,
                          f"{text} on {link.ifname} in {ns} failed duplicate address detection",
                          [f"ip -j addr in {ns}: {text} dadfailed tentative: another host on "
                           "the link answered for it"], "addr")
            return [item]  # which holder is right is the operator's call: no fix
    return []

