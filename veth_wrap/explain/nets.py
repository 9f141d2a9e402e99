"""What a diagnosis has read of the host: links, routes, veth peers and sysctls, remembered.

Every read goes through kernel/reader (many namespaces in one process); this is the
diagnosis' view, read on demand and kept, with the processes it took counted. The root
namespace is only ever read, never changed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.errors import NoSuchNamespace
from veth_wrap.explain.routing import route_network
from veth_wrap.kernel import reader, state
from veth_wrap.kernel.reader import RouteAnswer
from veth_wrap.kernel.readings import gather
from veth_wrap.model.facts import LinkState
from veth_wrap.run.counted import Counted
from veth_wrap.run.runner import Runner, default_runner

__all__ = ["Nets", "Ns", "Peer", "Reach", "RouteAnswer", "address_of", "label",
           "matching_route", "sysctl_ifname"]
# what is read of every namespace, in one process: IPv4 rules and every table come along
LOAD = (reader.LINKS, reader.TABLES, reader.NSIDS, reader.NEIGHBOURS, reader.RULES)
NEAR_HOPS = 2  # veth hops read up front; farther namespaces are read when the walk gets there
Ns = Optional[str]  # noqa: UP045 (a runtime alias on 3.9) a namespace; None is the root


def label(ns: Ns) -> str:
    """How a namespace is named in messages."""
    return "the root namespace" if ns is None else ns


def address_of(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """An address with prefix, as ip prints it ("10.0.0.1/24")."""
    return ipaddress.ip_interface(text)


@dataclass(frozen=True)
class Peer:
    """Where the other end of a veth is: a named namespace, the root one, or an unnamed one."""

    ns: Ns
    ifname: str
    where: str  # "named", "root" or "unnamed"
    nsid: int | None = None


@dataclass(frozen=True)
class Reach:
    """An interface at the far side of a link, and the devices crossed to get there."""

    ns: Ns
    ifname: str
    path: tuple[tuple[Ns, str], ...]  # (namespace, device) crossed: the peer, a bridge, a port


@dataclass
class Nets:
    """The namespaces read so far; reads more on demand and remembers every answer."""

    runner: Runner
    names: list[str]
    links: dict[Ns, dict[str, LinkState]] = field(default_factory=dict)
    routes: dict[Ns, list[dict]] = field(default_factory=dict)
    nsids: dict[Ns, dict[int, str | None]] = field(default_factory=dict)
    sysctls: dict[Ns, dict[str, str]] = field(default_factory=dict)
    answers: dict[tuple[Ns, str], RouteAnswer] = field(default_factory=dict)
    neighs: dict[Ns, list[dict]] = field(default_factory=dict)
    policies: dict[tuple[Ns, int], tuple[list[dict], list[dict]]] = field(default_factory=dict)
    searched: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    start: str = ""
    counted: Counted = field(init=False)

    def __post_init__(self) -> None:
        self.counted = Counted(self.runner)  # every read of the diagnosis, counted

    @property
    def processes(self) -> int:
        """The processes the diagnosis has started so far."""
        return self.counted.count

    @classmethod
    def open(cls, namespace: str, runner: Runner | None = None,
             names: list[str] | None = None) -> Nets:
        """Start from one namespace: refuse it when it does not exist, read its neighbourhood
        (names: the namespaces there are, when just read)."""
        runner = runner or default_runner()
        listed = names is None
        names = state.list_netns(runner) if names is None else names
        if namespace not in names:
            raise NoSuchNamespace(namespace)
        nets = cls(runner, names, start=namespace)
        nets.counted.add(int(listed))
        nets.load([namespace])  # then what the links lead to, one process per hop
        for _ in range(NEAR_HOPS):
            nets.load(nets.neighbours())
        return nets

    def load(self, namespaces: Iterable[str]) -> None:
        """Read links, routes and namespace ids of namespaces not read yet, in one process."""
        todo = [ns for ns in dict.fromkeys(namespaces) if ns not in self.links]
        if not todo:
            return
        for ns, (links, routes, ids, neigh, rules) in gather(todo, LOAD, self.counted).items():
            if links is None:  # deleted meanwhile: forget it
                self.names = [name for name in self.names if name != ns]
                continue
            self.links[ns] = links
            self.routes[ns] = [r for r in routes or [] if r.get("table", "main") == "main"]
            self.nsids[ns] = ids or {}
            if neigh is not None:
                self.neighs[ns] = neigh
            if rules is not None and routes is not None:
                self.policies[(ns, 4)] = (rules, routes)

    def neighbours(self) -> list[str]:
        """Named namespaces one veth away from those read, not read yet."""
        found = []
        for ns, links in list(self.links.items()):
            for link in links.values():
                name = self.nsids.get(ns, {}).get(link.peer_netnsid)
                if name and name not in self.links:
                    found.append(name)
        return found

    def root(self) -> dict[str, LinkState]:
        """The root namespace's links (read-only)."""
        if None not in self.links:
            links, ids = gather([None], (reader.LINKS, reader.NSIDS), self.counted)[None]
            self.links[None], self.nsids[None] = links or {}, ids or {}
        return self.links[None]

    def link(self, ns: Ns, ifname: str) -> LinkState | None:
        """One interface, if it exists."""
        links = self.root() if ns is None else self.links.get(ns, {})
        return links.get(ifname)

    def ns_links(self, ns: Ns) -> dict[str, LinkState]:
        """All interfaces of a namespace (read on demand)."""
        if ns is None:
            return self.root()
        self.load([ns])
        return self.links.get(ns, {})

    def peer(self, ns: Ns, ifname: str) -> Peer | None:
        """The other end of a veth, wherever it is."""
        link = self.link(ns, ifname)
        if link is None or link.kind != "veth" or link.peer_index is None:
            return None
        if link.peer_netnsid is None:  # both ends in the same namespace
            return self._find_peer(ns, link, "root" if ns is None else "named", None)
        name = self.nsids.get(ns, {}).get(link.peer_netnsid)
        if name is not None:
            self.load([name])
            return self._find_peer(name, link, "named", link.peer_netnsid)
        if ns is not None:
            found = self._find_peer(None, link, "root", link.peer_netnsid)
            if found is not None:
                return found
        return Peer(None, f"ifindex {link.peer_index}", "unnamed", link.peer_netnsid)

    def _find_peer(self, ns: Ns, link: LinkState, where: str, nsid) -> Peer | None:
        for other in self.ns_links(ns).values():
            if other.ifindex == link.peer_index and other.kind == "veth" \
                    and other.peer_index == link.ifindex:
                return Peer(ns, other.ifname, where, nsid)
        return None

    def bridge_ports(self, ns: Ns, bridge: str) -> list[str]:
        """The interfaces enslaved to a bridge."""
        return [ln.ifname for ln in self.ns_links(ns).values() if ln.master == bridge]

    def reaches(self, ns: Ns, ifname: str) -> list[Reach]:
        """The interfaces on the far side of a link: a veth peer, or across a bridge."""
        link = self.link(ns, ifname)
        if link is None:
            return []
        if link.kind == "bridge":
            return [r for port in self.bridge_ports(ns, ifname)
                    for r in self._beyond_port(ns, port, ((ns, ifname), (ns, port)))]
        peer = self.peer(ns, ifname)
        if peer is None or peer.where == "unnamed":
            return []
        far = self.link(peer.ns, peer.ifname)
        if far is None or not far.master:
            return [Reach(peer.ns, peer.ifname, ((peer.ns, peer.ifname),))]
        start = ((peer.ns, peer.ifname), (peer.ns, far.master))
        found = [Reach(peer.ns, far.master, start)]
        for port in self.bridge_ports(peer.ns, far.master):
            if port != peer.ifname:
                found.extend(self._beyond_port(peer.ns, port, start + ((peer.ns, port),)))
        return found

    def _beyond_port(self, ns: Ns, port: str, path: tuple) -> list[Reach]:
        other = self.peer(ns, port)
        if other is None or other.where == "unnamed":
            return []
        return [Reach(other.ns, other.ifname, path + ((other.ns, other.ifname),))]

    def holds(self, ns: Ns, address: str) -> str | None:
        """The interface of a namespace that carries an address (any state), if any."""
        wanted = ipaddress.ip_address(address)
        for link in self.ns_links(ns).values():
            if any(address_of(a).ip == wanted for a in link.addresses):
                return link.ifname
        return None

    def holders(self, address: str) -> list[tuple[str, str]]:
        """The (namespace, interface) pairs that carry an address among the namespaces linked
        to the start (by veth peers, however many hops away): a lab beside it never counts."""
        return [(ns, ifname) for ns in self.connected() for ifname in [self.holds(ns, address)]
                if ifname and ns is not None]

    def connected(self) -> list[str]:
        """The named namespaces reached from the start by following veth peers."""
        seen, todo = [self.start], [self.start]
        while todo:
            self.load(todo)
            todo = [name for ns in todo for link in self.links.get(ns, {}).values()
                    for name in [self.nsids.get(ns, {}).get(link.peer_netnsid)]
                    if name and name not in seen and name in self.names]
            seen += list(dict.fromkeys(todo))
        return [ns for ns in seen if ns in self.links]

    def search(self, address: str) -> list[tuple[str, str]]:
        """Every (namespace, interface) on the host that carries an address: one process of
        `ip addr show to`, only for a dead end, where the walk has nothing left to follow."""
        if address not in self.searched:
            near = self.holders(address)
            linked = set(self.connected())
            rest = [ns for ns in self.names if ns not in linked]
            docs = reader.each(rest, reader.addresses_to(address), self.counted)
            far = [(ns, item["ifname"]) for ns, doc in docs.items() for item in doc or []
                   if item.get("addr_info")]
            self.searched[address] = near + far
        return self.searched[address]

    def route_get(self, ns: Ns, address: str, src: str | None = None) -> RouteAnswer:
        """The route the kernel picks from a namespace to an address (from src, if given)."""
        key = (ns, address + (f" from {src}" if src else ""))
        if key not in self.answers:
            self.answers[key] = reader.route_get(ns, address, self.counted, src)
        return self.answers[key]

    def prefetch_routes(self, address: str) -> None:
        """`route get` of an address in every namespace linked to the start, in one process
        (a refused lookup is asked again alone when needed, for the kernel's words)."""
        version = ipaddress.ip_address(address).version
        todo = [ns for ns in self.connected() if (ns, address) not in self.answers
                and any(route_network(r.get("dst", ""), version) for r in self.routes.get(ns, []))]
        for ns, doc in reader.each(todo, reader.route_to(address), self.counted).items():
            if doc:
                self.answers[(ns, address)] = RouteAnswer(doc[0])

    def neigh(self, ns: Ns) -> list[dict]:
        """The neighbour table of a namespace (`ip -j neigh show`), both families."""
        if ns not in self.neighs:  # the root namespace's is not read
            found = reader.one(ns, reader.NEIGHBOURS, self.counted) if ns is not None else None
            self.neighs[ns] = found or []
        return self.neighs[ns]

    def policy(self, ns: Ns, family: int) -> tuple[list[dict], list[dict]]:
        """(rules, routes of every table) of a namespace, read in one process."""
        key = (ns, family)
        if key not in self.policies:  # the root namespace's is not read
            self.policies[key] = reader.policies([ns], family, self.counted)[ns] if ns \
                else ([], [])
        return self.policies[key]

    def sysctl(self, ns: str, *keys: str) -> dict[str, str]:
        """Sysctls inside a namespace: on the first ask, every key a diagnosis looks at, for
        this namespace and those linked to it, in one process; later keys one process more."""
        if ns not in self.sysctls:
            self._read_sysctls([ns, *[n for n in self.connected() if n not in self.sysctls]],
                               keys)
        known = self.sysctls.setdefault(ns, {})
        missing = [k for k in keys if k not in known]
        if missing:
            self._read_sysctls([ns], missing)
        return {k: known.get(k, "") for k in keys}

    def _read_sysctls(self, namespaces: list[str], extra: tuple | list) -> None:
        todo = list(dict.fromkeys(n for n in namespaces if n is not None))[:SYSCTL_AT_ONCE]
        wanted = {ns: [*self._keys(ns), *extra] for ns in todo}
        for ns, values in reader.sysctls(wanted, self.counted).items():
            self.sysctls.setdefault(ns, {}).update(values)

    def _keys(self, ns: str) -> list[str]:
        """The sysctls a diagnosis may ask of a namespace: global, all, default, each link."""
        names = ["all", "default", *(sysctl_ifname(n) for n in self.links.get(ns, {}))]
        return [*GLOBAL_KEYS,
                *(f"net.ipv4.conf.{n}.{k}" for n in names for k in IPV4_CONF),
                *(f"net.ipv6.conf.{n}.{k}" for n in names for k in IPV6_CONF)]


SYSCTL_AT_ONCE = 16  # namespaces whose sysctls are read in one process
GLOBAL_KEYS = ("net.ipv4.icmp_echo_ignore_all", "net.ipv4.icmp_echo_ignore_broadcasts",
               "net.ipv6.icmp.echo_ignore_all")
IPV4_CONF = ("forwarding", "rp_filter", "arp_ignore", "arp_filter", "arp_announce",
             "accept_local")
IPV6_CONF = ("forwarding", "disable_ipv6")


def sysctl_ifname(ifname: str) -> str:
    """An interface name as it appears inside a sysctl key ('.' becomes '/')."""
    return ifname.replace(".", "/")


def matching_route(routes: list[dict], address: str, dev: str) -> dict | None:
    """The most specific route of a table that covers an address and leaves by dev."""
    wanted = ipaddress.ip_address(address)
    best, best_len = None, -1
    for route in routes:
        dst = route.get("dst", "")
        if route.get("dev") != dev or route.get("type", "unicast") != "unicast":
            continue
        net = route_network(dst, wanted.version)
        if net is not None and wanted in net and net.prefixlen > best_len:
            best, best_len = route, net.prefixlen
    return best
