"""The built-in shapes: pair, bridge, chain and mesh, compiled into a Lab."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from ipaddress import ip_network
from typing import Optional, Sequence, Union

from veth_wrap.errors import UsageError
from veth_wrap.model import names
from veth_wrap.model.linkopts import LinkOpts
from veth_wrap.model.names import Role
from veth_wrap.model.topology import (
    BRIDGE_PORT_LIMIT,
    DEFAULT_SUBNET,
    MESH_LINK_LIMIT,
    Bridge,
    End,
    Kind,
    Lab,
    Link,
    Network,
    Route,
    carve,
    check_members,
    hosts,
    parse_subnet,
)

Subnets = Union[str, Sequence[Network], None]


def build(members: Sequence[str], *, kind: Optional[Kind] = None, subnet: Subnets = None,
          lab: Optional[str] = None, host_bridge: bool = False, opts: Optional[LinkOpts] = None,
          ipv6: bool = False, direction: str = "both") -> Lab:
    """Validate the request and compile it into a Lab: one subnet per IP version, merged.

    subnet is parsed networks (the CLI and the lab-file reader parse them), or text naming
    up to two, comma-separated ("10.0.0.0/24,fd00::/64") for dual stack; ipv6 adds a
    unique-local /64 derived from the lab name when no IPv6 subnet is given.
    """
    nets: list[Optional[Network]] = list(
        parse_subnets(subnet) if isinstance(subnet, str) else subnet or [])
    if not any(net.version == 4 for net in nets) and (not nets or ipv6):
        nets.insert(0, None)
    if ipv6 and not any(net is not None and net.version == 6 for net in nets):
        nets.append(ip_network(default_ula(lab if lab is not None else _default_lab(members[0]))))
    labs = [_build_one(members, kind, net, lab, host_bridge) for net in nets]
    return with_opts(_merge(labs), opts, direction)


def parse_subnets(text: str, what: str = "subnet") -> list[Network]:
    """Up to one IPv4 and one IPv6 subnet, comma-separated; what names the value in errors."""
    nets = [parse_subnet(part, what) for part in text.split(",") if part.strip()]
    if len({net.version for net in nets}) != len(nets):
        raise UsageError(f"{what} {text} names two subnets of one IP version",
                         "give at most one IPv4 and one IPv6 subnet")
    return nets


def default_ula(lab: str) -> str:
    """A unique-local /64 (RFC 4193) whose global ID comes from the lab name: stable per lab."""
    digest = hashlib.sha256(lab.encode()).hexdigest()[:10]
    return f"fd{digest[:2]}:{digest[2:6]}:{digest[6:10]}::/64"


def _merge(labs: list[Lab]) -> Lab:
    """One lab from the same shape built once per IP version: addresses and routes joined."""
    base = labs[0]
    for other in labs[1:]:
        links = tuple(Link(_joined(mine.a, theirs.a), _joined(mine.b, theirs.b))
                      for mine, theirs in zip(base.links, other.links))
        base = dataclasses.replace(base, links=links, routes=base.routes + other.routes,
                                   subnet=f"{base.subnet},{other.subnet}")
    return base


def _joined(end: End, other: End) -> End:
    return dataclasses.replace(end, addresses=end.addresses + other.addresses)


def with_opts(lab: Lab, opts: Optional[LinkOpts], direction: str = "both") -> Lab:
    """Put link options on every link: both ends, or only the first end's egress (a-to-b).

    The MTU goes on both ends either way: ends that disagree on it drop large frames.
    """
    if opts is None:
        return lab
    if direction not in ("both", "a-to-b"):
        raise UsageError(f"--direction {direction!r} is not known", "use both or a-to-b")
    return dataclasses.replace(lab, links=tuple(link_with_opts(link, opts, direction)
                                                for link in lab.links))


def link_with_opts(link: Link, opts: LinkOpts, direction: str = "both") -> Link:
    """One link with options on both ends, or on end a only (the MTU always on both)."""
    other = opts if direction == "both" else (LinkOpts(mtu=opts.mtu) if opts.mtu else None)
    return Link(dataclasses.replace(link.a, opts=opts), dataclasses.replace(link.b, opts=other))


def _build_one(members: Sequence[str], kind: Optional[Kind], subnet: Optional[Network],
               lab: Optional[str], host_bridge: bool) -> Lab:
    """Validate the request and compile it into a Lab."""
    members = check_members(members)
    kind = kind or (Kind.PAIR if len(members) == 2 else Kind.BRIDGE)
    lab = names.check_lab(lab if lab is not None else _default_lab(members[0]))
    if kind is Kind.PAIR and len(members) != 2:
        raise UsageError(f"--topology pair joins exactly two namespaces, not {len(members)}",
                         "use --topology bridge, chain or mesh for more")
    if host_bridge and kind is not Kind.BRIDGE:
        raise UsageError("--host-bridge goes with --topology bridge", "drop --host-bridge")
    builder = {Kind.PAIR: _pair, Kind.BRIDGE: _bridge, Kind.CHAIN: _chain, Kind.MESH: _mesh}
    net = _subnet_for(kind, len(members), subnet)
    result = builder[kind](lab, members, net, host_bridge) if kind is Kind.BRIDGE \
        else builder[kind](lab, members, net)
    _check_ifnames(result)
    return result


def _default_lab(first: str) -> str:
    return names.short(first, names.LAB_MAX)


def _needed(kind: Kind, count: int) -> tuple[int, str]:
    """How many hosts (pair/bridge) or links (chain/mesh) a shape needs."""
    if kind is Kind.CHAIN:
        return count - 1, "links"
    if kind is Kind.MESH:
        return count * (count - 1) // 2, "links"
    return count, "hosts"


def _subnet_for(kind: Kind, count: int, given: Optional[Network]) -> Network:
    """The given subnet, or the default grown until the shape fits."""
    if given is not None:
        return given
    net = parse_subnet(DEFAULT_SUBNET)
    needed, unit = _needed(kind, count)
    while True:
        room = net.num_addresses - 2 if unit == "hosts" else net.num_addresses // 4
        if room >= needed or net.prefixlen <= 8:
            return net
        net = net.supernet()


def _pair(lab: str, members: Sequence[str], net: Network) -> Lab:
    left, right = members
    first, second = hosts(net, 2, "a pair")
    a = End(left, names.p2p_ifname(right), Role.END, (first,))
    b = End(right, names.p2p_ifname(left), Role.END, (second,))
    return Lab(lab, Kind.PAIR, tuple(members), (Link(a, b),), subnet=str(net))


def _bridge(lab: str, members: Sequence[str], net: Network, host_bridge: bool) -> Lab:
    if len(members) > BRIDGE_PORT_LIMIT:
        raise UsageError(f"a bridge takes at most {BRIDGE_PORT_LIMIT} ports, not {len(members)}",
                         "split the namespaces over several labs")
    hub = None if host_bridge else names.hub_netns(lab)
    bridge = names.bridge_name(lab)
    addresses = hosts(net, len(members), f"a bridge of {len(members)} namespaces")
    links = tuple(
        Link(End(member, names.member_ifname(lab), Role.MEMBER, (address,)),
             End(hub, names.port_ifname(member), Role.PORT, master=bridge))
        for member, address in zip(members, addresses)
    )
    return Lab(lab, Kind.BRIDGE, tuple(members), links, hub=hub,
               bridges=(Bridge(hub, bridge),), subnet=str(net))


def _link(left: str, right: str, sub: Network, role: str = Role.END) -> Link:
    low, high = (f"{ipaddress.ip_address(int(sub.network_address) + i)}/{sub.prefixlen}"
                 for i in (1, 2))
    return Link(End(left, names.p2p_ifname(right), role, (low,)),
                End(right, names.p2p_ifname(left), role, (high,)))


def _chain(lab: str, members: Sequence[str], net: Network) -> Lab:
    subs = carve(net, len(members) - 1, f"a chain of {len(members)} namespaces")
    links = tuple(_link(members[i], members[i + 1], subs[i]) for i in range(len(subs)))
    routes: list[Route] = []
    for i, netns in enumerate(members):
        routes.extend(_chain_routes(i, netns, members, links, subs, net))
    return Lab(lab, Kind.CHAIN, tuple(members), links, routes=tuple(routes),
               forwarding=tuple(members[1:-1]), subnet=str(net))


def _chain_routes(i: int, netns: str, members, links, subs, net) -> list[Route]:
    """Routes for member i: the whole subnet one way, the far side summarised the other."""
    routes = []
    if i + 1 < len(members):
        right = links[i]
        routes.append(Route(netns, str(net), _ip(right.b), right.a.ifname))
    elif i > 0:
        left = links[i - 1]
        routes.append(Route(netns, str(net), _ip(left.a), left.b.ifname))
    if 1 < i and i + 1 < len(members):
        left = links[i - 1]
        far = ipaddress.summarize_address_range(subs[0].network_address,
                                                subs[i - 2].broadcast_address)
        routes.extend(Route(netns, str(block), _ip(left.a), left.b.ifname) for block in far)
    return routes


def _ip(end: End) -> str:
    return end.addresses[0].split("/")[0]


def _mesh(lab: str, members: Sequence[str], net: Network) -> Lab:
    count = len(members) * (len(members) - 1) // 2
    if count > MESH_LINK_LIMIT:
        raise UsageError(
            f"a mesh of {len(members)} namespaces needs {count} veth pairs, more than the "
            f"limit of {MESH_LINK_LIMIT}", "use --topology bridge: one link per namespace")
    subs = iter(carve(net, count, f"a mesh of {len(members)} namespaces"))
    links = tuple(_link(members[i], members[j], next(subs))
                  for i in range(len(members)) for j in range(i + 1, len(members)))
    return Lab(lab, Kind.MESH, tuple(members), links, subnet=str(net))


def _check_ifnames(lab: Lab) -> None:
    """Refuse two ends with one name in one namespace (possible only with clashing hashes)."""
    seen: set[tuple] = set()
    for end in lab.ends():
        key = (end.netns, end.ifname)
        if key in seen:
            raise UsageError(f"two interfaces would be named {end.ifname} in {end.netns}",
                             "rename one of the namespaces")
        seen.add(key)
