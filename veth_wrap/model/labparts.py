"""The bridge, route, forwarding and interface-name parts of reading a lab file."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

from veth_wrap.model import names
from veth_wrap.model.names import Role
from veth_wrap.model.topology import DEFAULT_SUBNET, Bridge, End, Link, Route

Where = tuple  # a path of keys and indexes inside the document, e.g. ("links", 0, "between")
BRIDGE_KEYS = {"name", "members", "where", "subnet", "interface", "addresses", "interfaces",
               "ports"}
LAN_PREFIX = {4: 24, 6: 64}  # the size of a LAN the pool gives a bridge without a subnet
MULTI_LAN_POOL = "10.0.0.0/16"  # the pool of a lab of several LANs that names no subnet


@dataclass
class LanHead:
    """A bridge as the file gives it, before its members' links are made."""

    where: Where
    item: dict
    index: int
    name: str
    place: Optional[str]
    members: list[str]
    ifname: str
    net: Optional[object] = None
    shared: bool = False  # on the lab's subnet, with links' /30s among its hosts


def lan_pool(subnet, lans: int):
    """Where addresses not given come from: the lab's subnet, else a default."""
    if subnet is not None:
        return subnet
    return ipaddress.ip_network(MULTI_LAN_POOL if lans > 1 else DEFAULT_SUBNET)


def lan_prefix(pool, count: int) -> Optional[int]:
    """The prefix of a LAN carved from pool for `count` LANs, leaving a block for links."""
    bits = max(1, count.bit_length())  # count LANs and one block for the links
    prefix = max(LAN_PREFIX[pool.version], pool.prefixlen + bits)
    return prefix if prefix <= pool.max_prefixlen - 2 else None
ROUTE_KEYS = {"to", "via", "dev"}
LOOPBACK = "lo"  # in every namespace already
IP_WORDS = {"up", "down", "dev", "type", "name", "master", "alias", "peer", "netns", "mtu",
            "address", "help", "all", "group", "nomaster", "via", "default"}


class BuilderParts:
    """Methods of labfile._Builder for bridges, routes, forwarding and interface names."""

    def ifname_ok(self, where: Where, name: str) -> bool:
        """A valid interface name that `ip` will not read as one of its keywords."""
        if name in IP_WORDS:
            self.doc.fail(where, f"{name!r} is a word of the ip command", "pick another name")
            return False
        if name == LOOPBACK:
            self.doc.fail(where, f"{name!r} is the loopback device every namespace has",
                          "pick another name")
            return False
        return self._check(where, names.check_ifname, name)

    def _bridges(self, value) -> tuple[list[Bridge], Optional[str]]:
        """Every bridge (a LAN each) and the hub namespace, if a bridge lives there."""
        items = self._list(value, ("bridges",), "bridges")
        heads = [head for i, item in enumerate(items)
                 if (head := self._bridge_head(i, item, len(items))) is not None]
        pool = lan_pool(self.subnet, len(heads))
        self.pool = pool
        for head in heads:  # a subnet of its own is the bridge's alone; links go elsewhere
            if head.net is not None:
                self._bridge_nets.append(head.net)
        free = [h for h in heads if h.net is None]
        if len(heads) == 1 and free:  # on the lab's subnet members take hosts first
            free[0].net, free[0].shared = pool, True
        else:
            self._carve_lans(free, pool)
        bridges, hub = [], None
        for head in heads:
            if head.net is None:
                continue
            bridges.append(self._bridge_links(head))
            hub = hub or (head.place if head.place == names.hub_netns(self.name) else None)
        return bridges, hub

    def _bridge_head(self, index: int, item, count: int) -> Optional[LanHead]:
        """A bridge's name, place, subnet and members, its problems recorded."""
        where = ("bridges", index)
        if not isinstance(item, dict):
            self.doc.fail(where, "a bridge is a mapping with members (and name, where, subnet)")
            return None
        for key in sorted(set(item) - BRIDGE_KEYS):
            self.doc.fail(where + (key,), "unknown key",
                          f"expected {', '.join(sorted(BRIDGE_KEYS))}")
        name = str(item.get("name") or names.bridge_name(self.name, index))
        self.ifname_ok(where + ("name",), name)
        place = self._bridge_place(item.get("where", "hub"), where + ("where",))
        members = self._bridge_members(item, where)
        if place in {self.ns.get(m) for m in members}:
            self.doc.fail(where + ("where",), f"{item.get('where')!r} holds the bridge and "
                          "cannot also be its member", "put the bridge in the hub instead")
        for other in getattr(self, "_heads", []):
            if other.name == name and other.place == place:
                self.doc.fail(where + ("name",), f"bridge {name} is named twice there",
                              "give each bridge its own name")
        given = item.get("name")
        default_if = names.lan_member_ifname(str(given)) if given \
            else names.member_ifname(self.name if index == 0 else f"{self.name}{index}")
        ifname = str(item.get("interface") or default_if)
        self.ifname_ok(where + ("interface",), ifname)
        head = LanHead(where, item, index, name, place, members, ifname,
                       self._network(item, where + ("subnet",)) or _given_net(item))
        self._heads = getattr(self, "_heads", []) + [head]
        return head

    def _bridge_place(self, place, where: Where) -> Optional[str]:
        """hub: the lab's own namespace; root; or a namespace listed in the file."""
        if place == "hub":
            return names.hub_netns(self.name)
        if place == "root":
            return None
        if isinstance(place, str) and place in self.ns:
            return self.ns[place]
        self.doc.fail(where, f"{place!r} is not a place for a bridge",
                      "use hub (its own namespace, the default), root, or a listed namespace")
        return names.hub_netns(self.name)

    def _carve_lans(self, heads: list[LanHead], pool) -> None:
        """Give each bridge without a subnet the next free block of the pool."""
        if not heads:
            return
        size = lan_prefix(pool, len(heads))
        blocks = (b for b in pool.subnets(new_prefix=size) if not any(
            b.overlaps(t) for t in self._bridge_nets + self.given) and not self._holds_used(b)) \
            if size is not None else iter(())
        for head in heads:
            head.net = next(blocks, None)
            if head.net is None:
                self.doc.fail(head.where, f"subnet {pool} has no room for another LAN",
                              "give the lab a larger subnet, or this bridge its own")
                return
            self._bridge_nets.append(head.net)

    def _holds_used(self, block) -> bool:
        return any(ipaddress.ip_address(a) in block for a in self.used)

    def _bridge_links(self, head: LanHead) -> Bridge:
        """The member links of one bridge, addressed from its subnet."""
        addresses = self._bridge_addresses(head.item, head.where, head.members, head.net)
        ifnames = self._named(head, "interfaces")
        ports = self._named(head, "ports")
        for ns in head.members:
            port = ports.get(ns) or names.port_ifname(self.ns[ns], head.index)
            ifname = ifnames.get(ns) or head.ifname
            self.places[(self.ns[ns], ifname)] = head.where + ("members",)
            self.places[(head.place, port)] = head.where + ("members",)
            self.links.append(Link(
                End(self.ns[ns], ifname, Role.MEMBER, tuple(x for x in [addresses.get(ns)] if x)),
                End(head.place, port, Role.PORT, master=head.name)))
        return Bridge(head.place, head.name)

    def _named(self, head: LanHead, key: str) -> dict:
        """A bridge's per-member interface (or port) names: member -> a valid name."""
        given = head.item.get(key) or {}
        if not isinstance(given, dict):
            self.doc.fail(head.where + (key,), "expected a mapping of member: interface name")
            return {}
        found = {}
        for ns, name in given.items():
            at = head.where + (key, ns)
            if ns not in head.members:
                self.doc.fail(at, f"{ns!r} is not a member of this bridge", "add it to members")
            elif self.ifname_ok(at, str(name)):
                found[ns] = str(name)
        return found

    def _bridge_members(self, item: dict, where: Where) -> list[str]:
        found: list[str] = []
        value = item.get("members")
        if not value:
            self.doc.fail(where + ("members",), "a bridge needs members", "list namespaces")
        seen: set = set()
        for i, ns in enumerate(self._list(value, where + ("members",), "namespaces")):
            if isinstance(ns, str) and ns in seen:
                self.doc.fail(where + ("members", i), f"{ns!r} is a member twice", "list it once")
            elif self._member(ns, where + ("members", i)):
                found.append(ns)
                seen.add(ns)
        return found

    def _bridge_addresses(self, item: dict, where: Where, members: list[str], net) -> dict:
        """Each member's address: as given under addresses, else the next free host of net."""
        given = item.get("addresses") or {}
        if not isinstance(given, dict):
            self.doc.fail(where + ("addresses",), "expected a mapping of member: address")
            given = {}
        result = {}
        for ns, addr in given.items():
            at = where + ("addresses", ns)
            if ns not in members:
                self.doc.fail(at, f"{ns!r} is not a member of this bridge", "add it to members")
            elif addr is not None:
                result[ns] = self._address(addr, at, net)
        free = (h for h in net.hosts() if str(h) not in self.used)
        for ns in members:
            if ns not in given:
                host = next(free, None)
                if host is None:
                    self.doc.fail(where + ("subnet",), f"subnet {net} has no room for {ns}",
                                  "give a larger subnet")
                    break
                self.used.add(str(host))
                result[ns] = f"{host}/{net.prefixlen}"
        return result

    def _routes(self, value) -> list[Route]:
        if value is None:
            return []
        if not isinstance(value, dict):
            self.doc.fail(("routes",), "expected a mapping of namespace: list of routes")
            return []
        routes = []
        for ns, items in value.items():
            if self._member(ns, ("routes", ns)) is None:
                continue
            for i, item in enumerate(self._list(items, ("routes", ns), "routes")):
                route = self._route(ns, item, ("routes", ns, i))
                if route:
                    routes.append(route)
        return routes

    def _route(self, ns: str, item, where: Where) -> Optional[Route]:
        if not isinstance(item, dict) or "to" not in item or "via" not in item:
            self.doc.fail(where, "a route is a mapping with to and via",
                          "e.g. {to: 10.0.0.0/16, via: 10.0.0.2}")
            return None
        for key in sorted(set(item) - ROUTE_KEYS):
            self.doc.fail(where + (key,), "unknown key", "expected to, via, dev")
        dest = _dest(item["to"])
        if dest is None:
            self.doc.fail(where + ("to",), f"{item['to']!r} is not a subnet", "e.g. 10.0.0.0/16")
        try:
            via = ipaddress.ip_address(str(item["via"]))
        except ValueError:
            self.doc.fail(where + ("via",), f"{item['via']!r} is not an address", "e.g. 10.0.0.2")
            return None
        dev = item.get("dev") or self._dev_towards(self.ns[ns], via)
        if dev is not None and str(via) in self._own.get(self.ns[ns], ()):
            self.doc.fail(where + ("via",), f"{via} is an address of {ns} itself",
                          "route via a neighbour's address on that link")
            return None
        if dev is None:
            self.doc.fail(where + ("via",), f"no interface of {ns} is on a subnet holding {via}",
                          "route via an address on one of its links")
            return None
        return Route(self.ns[ns], dest, str(via), str(dev)) if dest else None

    def _dev_towards(self, netns: str, via) -> Optional[str]:
        # indexed once: thousands of routes times thousands of links would take minutes
        if getattr(self, "_nets", None) is None:
            self._nets: dict = {}
            self._own: dict = {}
            for link in self.links:
                for end in (link.a, link.b):
                    self._nets.setdefault(end.netns, []).extend(
                        (ipaddress.ip_interface(a).network, end.ifname) for a in end.addresses)
                    self._own.setdefault(end.netns, set()).update(
                        str(ipaddress.ip_interface(a).ip) for a in end.addresses)
        return next((ifname for net, ifname in self._nets.get(netns, ()) if via in net), None)

    def _uplinks(self, value) -> tuple:
        """uplink: [ns, ...] or {namespaces: [...], forward: ["8080:web:80", ...]}."""
        if value is None:
            return ()
        from veth_wrap.errors import UsageError
        from veth_wrap.model import uplinks

        given = {"namespaces": value} if isinstance(value, list) else value
        if not isinstance(given, dict):
            self.doc.fail(("uplink",), "expected a list of namespaces, or a mapping with "
                          "namespaces and forward")
            return ()
        for key in sorted(set(given) - uplinks.KEYS):
            self.doc.fail(("uplink", key), "unknown key", "expected namespaces, forward")
        where = ("uplink",) if isinstance(value, list) else ("uplink", "namespaces")
        chosen = [ns for i, ns in enumerate(self._list(given.get("namespaces"), where,
                                                       "namespaces"))
                  if self._member(ns, where + (i,))]
        forwards = []
        for i, text in enumerate(self._list(given.get("forward"), ("uplink", "forward"),
                                            "forwards")):
            try:
                host_port, ns, port = uplinks.forward(text)
            except UsageError as exc:
                self.doc.fail(("uplink", "forward", i), exc.message, exc.hint)
                continue
            if self._member(ns, ("uplink", "forward", i)):
                forwards.append((host_port, ns, port))
        try:
            return uplinks.build(chosen, forwards, lambda name: self.ns[name])
        except UsageError as exc:
            self.doc.fail(("uplink", "forward"), exc.message, exc.hint)
            return ()

    def _forwarding(self, value) -> list[str]:
        result = []
        for i, ns in enumerate(self._list(value, ("forwarding",), "namespaces")):
            if self._member(ns, ("forwarding", i)):
                result.append(self.ns[ns])
        return result

    def _check_ifnames(self) -> None:
        """Refuse two interfaces of one name in one namespace."""
        seen: set[tuple] = set()
        for link in self.links:
            for end in (link.a, link.b):
                key = (end.netns, end.ifname)
                if key in seen:
                    self.doc.fail(self.places.get(key, ("links",)),
                                  f"two interfaces would be named {end.ifname} in {end.netns}",
                                  "give one of them another name under interfaces")
                seen.add(key)


def _given_net(item: dict):
    """A bridge's subnet as its first valid given address implies (None without one)."""
    given = item.get("addresses")
    for value in given.values() if isinstance(given, dict) else ():
        try:
            return ipaddress.ip_interface(str(value)).network if "/" in str(value) else None
        except ValueError:
            return None
    return None


def _dest(value) -> Optional[str]:
    """A route destination as `ip -j route` prints it (host routes without /32)."""
    if str(value) == "default":
        return "default"
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return None
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
