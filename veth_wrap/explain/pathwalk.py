"""Walking one direction of a path hop by hop and naming the first thing wrong on it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from veth_wrap.explain.findings import Candidate, Cause, Finding
from veth_wrap.explain.fixes import Fix, ip_n, link_up, route_fix, sysctl_fix
from veth_wrap.explain.hops import at_destination, blocked, hop
from veth_wrap.explain.nets import Nets, Ns, Reach, address_of, label, sysctl_ifname
from veth_wrap.explain.noroute import looping, missing_route
from veth_wrap.explain.offpath import off_path
from veth_wrap.explain.routing import BLOCKING

MAX_HOPS = 16


@dataclass
class Walk:
    """One direction: packets to `target`, from `source`, starting in a namespace."""

    nets: Nets
    target: str
    source: str | None = None
    reply: bool = False
    assume: tuple[Ns, str] | None = None  # (namespace, address/prefix) held once fixed
    checked: list[str] = field(default_factory=list)
    visits: list[tuple[Ns, str, str]] = field(default_factory=list)  # (ns, role, device)
    crossed: list[tuple[Ns, str]] = field(default_factory=list)  # every device on the way
    end: Ns = None
    reached: bool = False
    found: list[Finding] = field(default_factory=list)  # causes the walk went past

    @property
    def family(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.target).version

    def note(self, text: str) -> None:
        """Record a check that was made."""
        self.checked.append(("replies: " if self.reply else "") + text)

    def run(self, start: str) -> Finding | None:
        """Follow routes from start until the target's namespace, or a dead end.

        What can be undone without changing the path (a blackhole, a sysctl, a neighbour
        entry) goes to `found` and the walk goes on; a dead end is returned.
        """
        ns, iif = start, None
        self.visits.append((ns, "source", ""))
        for _ in range(MAX_HOPS):
            if iif is not None:
                self._add(self.source_local(ns, iif), ns)
                self._add(self.rp_filter(ns, iif), ns)
                if self.held(ns):
                    self.end, self.reached = ns, True
                    self.found.extend(at_destination(self, ns, iif))
                    return None
            src = self.source if iif is None and self.source and self.held_src(ns) else None
            answer = self.nets.route_get(ns, self.target, src)
            route = answer.route
            if route is None:
                blocks, route = blocked(self, ns, answer.error, src, iif)
                self.found.extend(blocks)
                if route is None:
                    return self.no_route(ns, answer.error)
            if route.get("type") == "local":
                self.end, self.reached = ns, True
                return None
            if self.source is None:
                self.source = route.get("prefsrc") or self._source_on(ns, route.get("dev"))
                if self.source:  # the way back is asked on every hop (rp_filter, replies)
                    self.nets.prefetch_routes(self.source.split("/")[0])
            found, nxt = self.step(ns, route)
            if found or nxt is None:
                return found
            ns, iif = nxt.ns, nxt.ifname
        self.note(f"gave up after {MAX_HOPS} hops (a routing loop?)")
        return None

    def _add(self, found: Finding | None, ns: Ns) -> None:
        if found is not None:
            found.passable, found.namespace = True, ns
            found.direction = "reply" if self.reply else "forward"
            self.found.append(found)

    def held_src(self, ns: Ns) -> bool:
        """True when the packets' source is an address of ns (so route get may say from)."""
        return self.source is not None and \
            self.nets.holds(ns, self.source.split("/")[0]) is not None

    def _source_on(self, ns: Ns, dev: str | None) -> str | None:
        link = self.nets.link(ns, dev or "")
        for text in link.addresses if link else ():
            if address_of(text).version == self.family:
                return str(address_of(text).ip)
        return None

    def held(self, ns: Ns) -> bool:
        """True when the target is (or, once fixed, will be) an address of ns."""
        return self.holds_addr(ns, self.target)

    def holding(self, address: str, everywhere: bool = False) -> list[tuple[Ns, str]]:
        """The namespaces and interfaces linked to the start that carry an address (with
        everywhere: on the whole host, for a dead end), the assumed one included."""
        found = list(self.nets.search(address) if everywhere else self.nets.holders(address))
        if self.assume and address_of(self.assume[1]).ip == ipaddress.ip_address(address):
            found.append((self.assume[0], ""))
        return found

    def step(self, ns: str, route: dict) -> tuple[Finding | None, Reach | None]:
        """Check one hop: the device, what is beyond it, and whether the next hop forwards."""
        dev, gw = route.get("dev", ""), route.get("gateway")
        self.note(f"{label(ns)}: {self.target} leaves by {dev}" + (f" via {gw}" if gw else ""))
        self.visits[-1] = (ns, self.visits[-1][1], dev)
        hop_addr = gw or self.target
        reaches = self.nets.reaches(ns, dev)
        holder = next((r for r in reaches if self.holds_addr(r.ns, hop_addr)), None)
        if holder is None:
            return off_path(self, ns, route, reaches), None
        found = self.path_state(ns, dev, holder, hop_addr)
        if found:
            return found, None
        self.crossed.extend(((ns, dev), *holder.path))
        self._record_bridges(holder)
        self.found.extend(hop(self, ns, dev, holder, hop_addr))
        if not self.held(holder.ns):
            loop = looping(self, ns, route, holder)
            if loop is not None:
                return loop, None
            self._add(self.forwarding(holder.ns, holder.ifname), holder.ns)
            self.visits.append((holder.ns, "router", ""))
        else:
            self.visits.append((holder.ns, "dest", holder.ifname))
        return None, holder

    def holds_addr(self, ns: Ns, address: str) -> bool:
        """True when ns has the address (or will have it, once the fix is applied)."""
        if self.assume and self.assume[0] == ns and \
                address_of(self.assume[1]).ip == ipaddress.ip_address(address):
            return True
        return self.nets.holds(ns, address) is not None

    def _record_bridges(self, holder: Reach) -> None:
        for pns, dev in holder.path:
            link = self.nets.link(pns, dev)
            if link is not None and link.kind == "bridge":
                self.visits.append((pns, "bridge", dev))

    def path_state(self, ns: str, dev: str, reach: Reach, address: str) -> Finding | None:
        """Name the first device that is down between dev and the interface holding address."""
        self.note(f"{label(ns)}: beyond {dev}: " + " -> ".join(
            f"{d} ({label(n)})" for n, d in reach.path))
        holding = self.nets.holds(reach.ns, address)
        devices = list(reach.path) + ([(reach.ns, holding)] if holding else [])
        for pns, pdev in devices:
            link = self.nets.link(pns, pdev)
            if link is None or link.up:
                continue
            cause, what = _down_cause(link.kind, link.master, (pns, pdev) == devices[0])
            return Finding(cause, f"{what} {pdev} in {label(pns)} is down",
                           [(f"{pdev} in {label(pns)} has no UP flag (flags: "
                             f"{','.join(link.raw.get('flags', []))})"),
                            f"{label(ns)} reaches {address} through it: "
                            + " -> ".join(d for _, d in reach.path)],
                           [link_up(pns, pdev)], decided_by="link")
        return None

    def forwarding(self, ns: Ns, iif: str) -> Finding | None:
        """A namespace in the middle must forward packets that arrive on iif."""
        if ns is None:
            return None
        base = "net.ipv4" if self.family == 4 else "net.ipv6"
        all_key = "net.ipv4.ip_forward" if self.family == 4 else "net.ipv6.conf.all.forwarding"
        dev_key = f"{base}.conf.{sysctl_ifname(iif)}.forwarding"
        values = self.nets.sysctl(ns, all_key, dev_key)
        self.note(f"{ns}: {all_key} = {values[all_key]}, {dev_key} = {values[dev_key]}")
        # writing the global key writes every interface's key too
        off = [all_key] if values[all_key] == "0" else [dev_key] if values[dev_key] == "0" else []
        if not off:
            return None
        return Finding(
            Cause.FORWARDING_DISABLED,
            f"{ns} is in the middle of the path but does not forward"
            + (" the replies" if self.reply else ""),
            [f"{k} = 0 in {ns}" for k in off]
            + [f"{ns} receives the packets for {self.target} on {iif} and must route them on"],
            [sysctl_fix(ns, {k: "1" for k in off})], decided_by="sysctl")

    def rp_filter(self, ns: Ns, iif: str) -> Finding | None:
        """Strict reverse-path filtering drops packets whose way back leaves by another device."""
        if ns is None or self.family != 4 or not self.source:
            return None
        keys = ("net.ipv4.conf.all.rp_filter", f"net.ipv4.conf.{sysctl_ifname(iif)}.rp_filter")
        values = self.nets.sysctl(ns, *keys)
        mode = max(int(v) if v.isdigit() else 0 for v in values.values())
        self.note(f"{ns}: rp_filter on {iif} = {mode} (max of all and {iif})")
        answer = self.nets.route_get(ns, self.source)
        back = answer.route
        what = "replies" if self.reply else "requests"
        if mode in (1, 2) and (back is None or back.get("type") in BLOCKING):
            return Finding(
                Cause.RP_FILTER,
                f"{'strict' if mode == 1 else 'loose'} rp_filter in {ns} drops the {what} from "
                f"{self.source}: {ns} has no route back to {self.source}",
                [f"rp_filter = {mode} for {iif} in {ns}: "
                 + ", ".join(f"{k} = {v}" for k, v in values.items()),
                 f"ip -n {ns} route get {self.source}: "
                 + (answer.error or (back or {}).get("type", "no route"))],
                [], decided_by="sysctl")  # the route back (named for the replies) heals it
        if mode != 1 or back is None or back.get("type") == "local" or back.get("dev") == iif:
            return None
        return Finding(
            Cause.RP_FILTER,
            f"strict rp_filter in {ns} drops the {what} from {self.source} arriving on {iif}",
            [f"rp_filter = 1 (strict) for {iif} in {ns}: "
             + ", ".join(f"{k} = {v}" for k, v in values.items()),
             (f"{what} from {self.source} arrive on {iif}, but the route back to "
              f"{self.source} leaves by {back.get('dev')}: the path is asymmetric")],
            [sysctl_fix(ns, {k: "2" for k, v in values.items() if v == "1"})],
            decided_by="sysctl")

    def source_local(self, ns: Ns, iif: str) -> Finding | None:
        """Packets from an address of the receiving namespace itself are martians: dropped
        (accept_local = 0), or with accept_local = 1 taken in and answered to itself."""
        src = (self.source or "").split("/")[0]
        holder = self.nets.holds(ns, src) if src and ns is not None else None
        if holder is None or ns == self.visits[0][0]:
            return None
        keys = [f"net.{'ipv4' if self.family == 4 else 'ipv6'}.conf.{n}.accept_local"
                for n in ("all", sysctl_ifname(iif))] if self.family == 4 else []
        values = self.nets.sysctl(ns, *keys) if keys else {}
        text = next(a for a in self.nets.link(ns, holder).addresses
                    if address_of(a).ip == ipaddress.ip_address(src))
        what = "replies" if self.reply else "requests"
        found = Finding(
            Cause.ACCEPT_LOCAL,
            f"{ns} holds {src} itself (on {holder}): the {what} from {src} arriving on {iif} "
            "look like its own packets",
            [f"ip -j addr in {ns}: {text} on {holder}",
             ", ".join(f"{k} = {v}" for k, v in values.items()) + ": the kernel drops packets "
             "whose source is one of its own addresses (IP_LOCAL_SOURCE); with accept_local on,"
             " it would answer them to itself" if values else
             "a reply to its own address never leaves the namespace"],
            decided_by="addr")
        return found.fix(ip_n(ns, "addr", "del", text, "dev", holder),
                         ip_n(ns, "addr", "add", text, "dev", holder))

    def no_route(self, ns: str, error: str) -> Finding:
        """No route at all: a down interface, one without an address, or a missing route."""
        self.note(f"{label(ns)}: no route to {self.target} ({error or 'route get failed'})")
        return missing_route(self, ns, error)

    def candidates(self, ns: Ns, exclude: str = "") -> list[Candidate]:
        """Interfaces of ns whose far side holds the target."""
        found = []
        for ifname, link in self.nets.ns_links(ns).items():
            if ifname in ("lo", exclude) or link.master:
                continue
            for reach in self.nets.reaches(ns, ifname):
                if self.holds_addr(reach.ns, self.target):
                    found.append(Candidate(ifname, reach))
                    break
        self.note(f"{label(ns)}: interfaces leading to {self.target}: "
                  + (", ".join(c.ifname for c in found) or "none"))
        return found

    def target_net(self) -> str:
        """The network the target is configured in (its own /32 or /128 when unknown)."""
        for ns, ifname in self.holding(self.target):
            if not ifname and self.assume:
                return str(address_of(self.assume[1]).network)
            for text in self.nets.ns_links(ns)[ifname].addresses:
                if address_of(text).ip == ipaddress.ip_address(self.target):
                    return str(address_of(text).network)
        return str(ipaddress.ip_network(self.target))

    def route_to(self, ns: str, cand: Candidate, current: dict | None) -> list[Fix]:
        """The commands that send the target's traffic from ns through a candidate."""
        fixes = [] if self.nets.link(ns, cand.ifname).up else [link_up(ns, cand.ifname)]
        return fixes + [route_fix(ns, self.target_net(), cand.ifname, cand.via, current,
                                  self.nets.routes.get(ns, []), self.target)]


def _down_cause(kind: str, master: str | None, first: bool) -> tuple[Cause, str]:
    if kind == "bridge":
        return Cause.BRIDGE_DOWN, "bridge"
    if master:
        return Cause.BRIDGE_PORT_DOWN, f"port of bridge {master}"
    return Cause.PEER_DOWN, "the peer end" if first else "the far end"
