"""Topologies as plain, validated data: namespaces, veth links, bridges, routes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Union

from veth_wrap.errors import UsageError
from veth_wrap.model import names

if TYPE_CHECKING:  # only a type here: commands that never touch link options skip netem
    from veth_wrap.model.linkopts import LinkOpts

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
DEFAULT_SUBNET = "10.0.0.0/24"
BRIDGE_PORT_LIMIT = 1024  # the kernel's BR_MAX_PORTS
MESH_LINK_LIMIT = 300
# namespaces: from this many a lab is big; its new namespaces are not all added by one command
BIG_LAB = 16
LINK_PREFIX = {4: 30, 6: 126}


class Kind(str, Enum):
    """The shapes vethwrap builds."""

    PAIR = "pair"
    BRIDGE = "bridge"
    CHAIN = "chain"
    MESH = "mesh"
    CUSTOM = "custom"


@dataclass(frozen=True)
class End:
    """One end of a veth pair, in a namespace (None: the root namespace)."""

    netns: Optional[str]
    ifname: str
    role: str
    addresses: tuple[str, ...] = ()
    master: Optional[str] = None
    opts: Optional[LinkOpts] = None  # impairments on this end's egress, MTU, MAC


@dataclass(frozen=True)
class Link:
    """A veth pair: a frame sent into one end comes out of the other."""

    a: End
    b: End


@dataclass(frozen=True)
class Bridge:
    """A Linux bridge and the namespace it lives in."""

    netns: Optional[str]
    name: str


@dataclass(frozen=True)
class Route:
    """A route inside a namespace."""

    netns: str
    dest: str
    via: str
    dev: str


@dataclass(frozen=True)
class Uplink:
    """A namespace that reaches the host's networks through a user-mode gateway (pasta).

    forwards: (host port, port in the namespace) pairs, TCP, from the host into the lab.
    """

    netns: str
    forwards: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Lab:
    """A whole topology: what `create` builds and `destroy` removes."""

    name: str
    kind: Kind
    members: tuple[str, ...]
    links: tuple[Link, ...]
    hub: Optional[str] = None
    bridges: tuple[Bridge, ...] = ()
    routes: tuple[Route, ...] = ()
    forwarding: tuple[str, ...] = ()
    subnet: Optional[str] = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    uplinks: tuple[Uplink, ...] = ()

    def namespaces(self) -> tuple[str, ...]:
        """Every namespace the lab uses, the hub last."""
        return members_and_hub(self.members, self.hub)

    def ends(self) -> Iterator[End]:
        """Every veth end, in link order."""
        for link in self.links:
            yield link.a
            yield link.b

    def ends_in(self, netns: Optional[str]) -> list[End]:
        """The veth ends inside one namespace."""
        return list(self._ends_by_netns.get(netns, ()))

    def links_from(self, netns: Optional[str]) -> list[Link]:
        """The links whose first end is inside one namespace."""
        return list(self._links_by_first.get(netns, ()))

    def links_to(self, netns: Optional[str]) -> list[Link]:
        """The links whose second end is inside one namespace."""
        return list(self._links_by_second.get(netns, ()))

    def address_of(self, netns: str, seen_from: Optional[str] = None,
                   version: Optional[int] = None) -> Optional[str]:
        """The address to reach netns at: on the link shared with seen_from, else its first."""
        for end in self._ends_towards.get((netns, seen_from), ()):
            found = _of_version(end.addresses, version)
            if found:
                return found
        for end in self.ends_in(netns):
            found = _of_version(end.addresses, version)
            if found:
                return found
        return None

    def versions(self) -> list[int]:
        """The IP versions the lab's addresses use, IPv4 first."""
        return list(self._versions)

    # Indexes made once per lab: labs of 1,000 namespaces ask these for every namespace.
    @cached_property
    def _ends_by_netns(self) -> dict[Optional[str], list[End]]:
        return _grouped(self.ends(), lambda end: end.netns)

    @cached_property
    def _links_by_first(self) -> dict[Optional[str], list[Link]]:
        return _grouped(self.links, lambda link: link.a.netns)

    @cached_property
    def _links_by_second(self) -> dict[Optional[str], list[Link]]:
        return _grouped(self.links, lambda link: link.b.netns)

    @cached_property
    def _ends_towards(self) -> dict[tuple, list[End]]:
        """(namespace, peer namespace) -> the ends in namespace of links to that peer."""
        found: dict[tuple, list[End]] = {}
        for link in self.links:
            for here, there in ((link.a, link.b), (link.b, link.a)):
                found.setdefault((here.netns, there.netns), []).append(here)
        return found

    @cached_property
    def _versions(self) -> tuple[int, ...]:
        return tuple(sorted({_version(a) for e in self.ends() for a in e.addresses}))


def members_and_hub(members: Sequence[str], hub: Optional[str]) -> tuple[str, ...]:
    """A lab's member namespaces, then its hub when it has one (a built Lab or a kernel view)."""
    return (*members, hub) if hub else tuple(members)


def _grouped(items, key) -> dict:
    """{key(item): [items with that key, in order]}."""
    found: dict = {}
    for item in items:
        found.setdefault(key(item), []).append(item)
    return found


def _version(address: str) -> int:
    """The IP version of a validated address: only IPv6 writes colons."""
    return 6 if ":" in address else 4


def _of_version(addresses: Sequence[str], version: Optional[int]) -> Optional[str]:
    """The first address (without prefix) of an IP version (any when None)."""
    for address in addresses:
        if version is None or _version(address) == version:
            return address.split("/")[0]
    return None


def parse_subnet(text: str, what: str = "subnet") -> Network:
    """Parse a CIDR subnet or refuse it with the reason; what names the value in errors."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a subnet in CIDR form",
                         "write it like 10.0.0.0/24") from None
    if "/" not in text:
        raise UsageError(f"{what} {text!r} has no prefix length", "write it like 10.0.0.0/24")
    if net.num_addresses < 4:
        raise UsageError(f"{what} {text} is too small to hold hosts",
                         "use a prefix of /30 or shorter, such as 10.0.0.0/24")
    why = unusable(net)
    if why:
        raise UsageError(f"{what} {net} {why}", USABLE_HINT)
    return net


# The ipaddress module's classes of addresses a host never holds as a lab's own, and why
SPECIAL = {
    "is_unspecified": "is unspecified: it means any address",
    "is_loopback": "is loopback: every namespace keeps it for its own lo",
    "is_link_local": "is link-local: the kernel gives those out itself, one link at a time",
    "is_multicast": "is multicast: group addresses, never an interface's own",
}
USABLE_HINT = "use a private unicast range, e.g. 10.0.0.0/24 or fd00:1::/64"


def unusable(value) -> Optional[str]:
    """Why a lab's hosts cannot take addresses from a network or address (None: they can).

    A network is refused when it, its first or its last address falls in a class the
    ipaddress module names special (so /1 networks that reach 0.0.0.0 or 127.0.0.0 too),
    and when it is /0, every address at once.
    """
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        if value.prefixlen == 0:
            return "is /0: every address, the host's own too"
        items = (value, value.network_address, value.broadcast_address)
    else:
        items = (getattr(value, "ip", value),)
    for prop, why in SPECIAL.items():
        found = next((item for item in items if getattr(item, prop)), None)
        if found is items[0]:
            return why
        if found is not None:
            return f"holds {found}, which {why}"
    return None


def check_members(members: Sequence[str]) -> tuple[str, ...]:
    """Validate the namespace names of a lab."""
    for name in members:
        names.check_netns(name)
        if name.startswith(f"{names.MARK}-"):
            raise UsageError(f"namespace name {name!r} is reserved for lab hubs",
                             f"pick a name that does not start with '{names.MARK}-'")
    seen: set[str] = set()
    for name in members:
        if name in seen:
            raise UsageError(f"namespace {name!r} is named twice", "name each namespace once")
        seen.add(name)
    if len(members) < 2:
        raise UsageError("a lab needs at least two namespaces",
                         "name two or more, e.g. 'vethwrap create ns0 ns1'")
    return tuple(members)


def hosts(net: Network, count: int, what: str) -> list[str]:
    """The first `count` host addresses of net, with its prefix, or refuse."""
    capacity = net.num_addresses - (2 if net.version == 4 and net.prefixlen < 31 else 0)
    if capacity < count:
        raise UsageError(f"subnet {net} holds {capacity} hosts but {what} needs {count}",
                         "give a larger subnet, e.g. 10.0.0.0/16")
    first = int(net.network_address) + 1
    return [f"{ipaddress.ip_address(first + i)}/{net.prefixlen}" for i in range(count)]


def carve(net: Network, count: int, what: str) -> list[Network]:
    """Split net into `count` link subnets (/30 for IPv4), or refuse."""
    prefix = LINK_PREFIX[net.version]
    if net.prefixlen > prefix or 2 ** (prefix - net.prefixlen) < count:
        have = 2 ** (prefix - net.prefixlen) if net.prefixlen <= prefix else 0
        raise UsageError(f"subnet {net} holds {have} links of /{prefix} but {what} needs {count}",
                         "give a larger subnet, e.g. 10.0.0.0/16")
    subnets = net.subnets(new_prefix=prefix)
    return [next(subnets) for _ in range(count)]
