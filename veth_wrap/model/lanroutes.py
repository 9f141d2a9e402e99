"""A lab as a graph of segments (LANs and links): its routers and their static routes.

A segment is one bridge, or one point-to-point link. A namespace on two or more segments is
a router. Every namespace gets a route to every segment it is not on, through the first
router of a shortest path (fewest routers crossed); a namespace on one segment whose only
way out is one router gets a default route to it instead. The root namespace is never
routed: vethwrap adds nothing there.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Optional

from veth_wrap.model.topology import End, Link, Network, Route


@dataclass
class Segment:
    """A LAN (bridge) or a point-to-point link, and the namespace ends on it."""

    key: tuple
    ends: list[End] = field(default_factory=list)
    _networks: Optional[list[Network]] = None

    def networks(self) -> list[Network]:
        """The subnets its addresses are on, in order of first use (read once)."""
        if self._networks is None:
            found: dict = {}
            for end in self.ends:
                for address in end.addresses:
                    found.setdefault(ipaddress.ip_interface(address).network, None)
            self._networks = list(found)
        return self._networks


@dataclass
class Graph:
    """Segments and which namespace is on which."""

    segments: list[Segment]
    on: dict[str, list[tuple[int, End]]]  # namespace -> (segment index, its end there)

    @staticmethod
    def of(links: Iterable[Link]) -> Graph:
        """The graph of a lab's links: bridge members by bridge, every other link alone."""
        index: dict[tuple, Segment] = {}
        for i, link in enumerate(links):
            if link.b.master:
                key = ("bridge", link.b.netns, link.b.master)
                index.setdefault(key, Segment(key)).ends.append(link.a)
            else:
                index[("link", i)] = Segment(("link", i), [link.a, link.b])
        segments = list(index.values())
        on: dict[str, list[tuple[int, End]]] = {}
        for k, segment in enumerate(segments):
            for end in segment.ends:
                if end.netns is not None:
                    on.setdefault(end.netns, []).append((k, end))
        return Graph(segments, on)

    def routers(self) -> list[str]:
        """Namespaces on two or more segments."""
        return [ns for ns, where in self.on.items() if len({k for k, _ in where}) > 1]

    def overlaps(self, shared: Optional[Network] = None) -> list[tuple[tuple, str]]:
        """(place of an end, message) for each segment whose subnet overlaps another's.

        shared: a lone bridge on the lab's subnet, whose free /30s the links take by design.
        """
        nets = sorted(((net, k) for k, seg in enumerate(self.segments)
                       for net in seg.networks() if net != shared),
                      key=lambda item: (item[0].version, item[0].network_address,
                                        -item[0].prefixlen))
        problems, widest = [], None
        for net, k in nets:
            if widest and widest[0].version == net.version and widest[1] != k \
                    and net.subnet_of(widest[0]):
                end = self.segments[k].ends[0]
                problems.append(((end.netns, end.ifname), f"subnet {net} of {end.ifname} in "
                                 f"{end.netns or 'the root namespace'} overlaps {widest[0]} "
                                 "of another segment"))
            if not widest or widest[0].version != net.version or not net.subnet_of(widest[0]):
                widest = (net, k)
        return problems

    def routes(self, defaults: bool = True) -> list[Route]:
        """Every namespace's routes to the segments it is not on.

        defaults=False: routes to each segment even where a default would do (a lab with an
        uplink leaves the way out to the namespaces that have one).
        """
        routers = set(self.routers())
        found: list[Route] = []
        for ns in self.on:
            found += (defaults and self._default(ns, routers)) or self._shortest(ns, routers)
        return found

    def _default(self, ns: str, routers: set) -> list[Route]:
        """A host on one segment with one router on it: a default route per IP version."""
        if ns in routers or len(self.segments) < 2:
            return []
        k, mine = self.on[ns][0]
        gateways = [end for end in self.segments[k].ends
                    if end.netns in routers and end.netns != ns]
        if len(gateways) != 1:
            return []
        return [Route(ns, "default", via, mine.ifname)
                for via in _vias(mine, gateways[0])]

    def _shortest(self, ns: str, routers: set) -> list[Route]:
        """Breadth first over routers: each segment reached through its first hop.

        The subnets behind one first hop are summed up (collapse_addresses: exactly their
        union), so that a chain of 1,000 /30 links takes a few routes a namespace, not 1,000.
        """
        direct = {k for k, _ in self.on[ns]}
        have = {net for k in direct for net in self.segments[k].networks()}
        hop: dict[str, tuple[End, End]] = {}
        queue: deque = deque()
        for k, mine in self.on[ns]:
            for end in self.segments[k].ends:
                if end.netns in routers and end.netns != ns and end.netns not in hop:
                    hop[end.netns] = (mine, end)
                    queue.append(end.netns)
        reached = set(direct)
        behind: dict[tuple, list[Network]] = {}  # (my end, gateway end) -> remote subnets
        while queue:
            router = queue.popleft()
            for k, _ in self.on[router]:
                if k in reached:
                    continue
                reached.add(k)
                behind.setdefault(hop[router], []).extend(
                    net for net in self.segments[k].networks() if net not in have)
                for end in self.segments[k].ends:
                    if end.netns in routers and end.netns not in hop and end.netns != ns:
                        hop[end.netns] = hop[router]
                        queue.append(end.netns)
        return [route for (mine, gateway), nets in behind.items()
                for route in _summed(ns, mine, gateway, nets)]


def _summed(ns: str, mine: End, gateway: End, nets: list[Network]) -> list[Route]:
    """Routes to nets through gateway, each IP version's subnets collapsed to fewest."""
    found = []
    for version in (4, 6):
        mine_nets = [n for n in nets if n.version == version]
        vias = _vias(mine, gateway, version)
        if not mine_nets or not vias:
            continue
        found += [Route(ns, str(net), vias[0], mine.ifname) for net in _collapse(mine_nets)]
    return found


def _collapse(nets: list[Network]) -> list[Network]:
    """The fewest prefixes covering exactly the union of nets (of one IP version).

    As ipaddress.collapse_addresses, by address ranges: that one pairs prefixes again and
    again, and a chain of 1,000 links took seconds.
    """
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in nets)
    merged: list[list[int]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    address = type(nets[0].network_address)
    return [net for low, high in merged
            for net in ipaddress.summarize_address_range(address(low), address(high))]


def _vias(mine: End, gateway: End, version: Optional[int] = None) -> list[str]:
    """The gateway's addresses on the subnets of mine (of one IP version, when given)."""
    nets = [ipaddress.ip_interface(a).network for a in mine.addresses]
    found = []
    for address in gateway.addresses:
        ip = ipaddress.ip_interface(address).ip
        if (version is None or ip.version == version) and any(ip in net for net in nets):
            if ip.version not in {ipaddress.ip_address(v).version for v in found}:
                found.append(str(ip))
    return found


def given_networks(data) -> list[Network]:
    """The subnets of the addresses a lab file gives its links (for the pool to avoid)."""
    found = []
    links = data.get("links") if isinstance(data, dict) else None
    for item in links if isinstance(links, list) else ():
        given = item.get("addresses") if isinstance(item, dict) else None
        for value in given if isinstance(given, list) else ():
            try:
                found.append(ipaddress.ip_interface(str(value)).network)
            except ValueError:
                continue
    return found
