"""The bridge, route, forwarding and interface-name parts of reading a lab file."""

from __future__ import annotations

import ipaddress
from typing import Optional

from veth_wrap.model import names
from veth_wrap.model.names import Role
from veth_wrap.model.topology import DEFAULT_SUBNET, Bridge, End, Link, Route

Where = tuple  # a path of keys and indexes inside the document, e.g. ("links", 0, "between")
BRIDGE_KEYS = {"name", "members", "where", "subnet", "interface", "addresses"}
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

    def _bridges(self, value) -> tuple[Optional[Bridge], Optional[str]]:
        items = self._list(value, ("bridges",), "bridges")
        if len(items) > 1:
            self.doc.fail(("bridges", 1), "a lab file holds at most one bridge",
                          "put every member on one bridge, or split the file into two labs")
        if not items:
            return None, None
        where, item = ("bridges", 0), items[0]
        if not isinstance(item, dict):
            self.doc.fail(where, "a bridge is a mapping with members (and name, where, subnet)")
            return None, None
        for key in sorted(set(item) - BRIDGE_KEYS):
            self.doc.fail(where + (key,), "unknown key",
                          f"expected {', '.join(sorted(BRIDGE_KEYS))}")
        place = item.get("where", "hub")
        if place not in ("hub", "root"):
            self.doc.fail(where + ("where",), f"{place!r} is not a place for a bridge",
                          "use hub (its own namespace, the default) or root")
        hub = None if place == "root" else names.hub_netns(self.name)
        name = str(item.get("name") or names.bridge_name(self.name))
        self.ifname_ok(where + ("name",), name)
        own = self._network(item, where + ("subnet",))
        net = own or self.subnet or ipaddress.ip_network(DEFAULT_SUBNET)
        if own is not None:  # a subnet of its own is the bridge's alone; links go elsewhere
            self._bridge_nets.append(net)
        # on the lab's subnet the members take hosts first, and links the /30s left free
        members = self._bridge_members(item, where)
        ifname = str(item.get("interface") or names.member_ifname(self.name))
        self.ifname_ok(where + ("interface",), ifname)
        addresses = self._bridge_addresses(item, where, members, net)
        for ns in members:
            self.places[(self.ns[ns], ifname)] = where + ("members",)
            self.places[(hub, names.port_ifname(self.ns[ns]))] = where + ("members",)
            self.links.append(Link(
                End(self.ns[ns], ifname, Role.MEMBER, tuple(x for x in [addresses.get(ns)] if x)),
                End(hub, names.port_ifname(self.ns[ns]), Role.PORT, master=name)))
        return Bridge(hub, name), hub

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
        if dev is None:
            self.doc.fail(where + ("via",), f"no interface of {ns} is on a subnet holding {via}",
                          "route via an address on one of its links")
            return None
        return Route(self.ns[ns], dest, str(via), str(dev)) if dest else None

    def _dev_towards(self, netns: str, via) -> Optional[str]:
        # indexed once: thousands of routes times thousands of links would take minutes
        if getattr(self, "_nets", None) is None:
            self._nets: dict = {}
            for link in self.links:
                for end in (link.a, link.b):
                    self._nets.setdefault(end.netns, []).extend(
                        (ipaddress.ip_interface(a).network, end.ifname) for a in end.addresses)
        return next((ifname for net, ifname in self._nets.get(netns, ()) if via in net), None)

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


def _dest(value) -> Optional[str]:
    """A route destination as `ip -j route` prints it (host routes without /32)."""
    if str(value) == "default":
        return "default"
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return None
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
