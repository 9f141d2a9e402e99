"""One host's share of a lab over several hosts: its namespaces, its links, its VXLAN ends.

A link whose ends sit on two hosts becomes, on each host, a VXLAN device of the end's name in
the end's namespace, sending to the other host's underlay address. A bridge with members on
several hosts becomes one bridge per host, in its hub, with one VXLAN port that replicates
floods to every other host holding members (head-end replication: no multicast).

VNI: 4096 + (the first four bytes of SHA-256 of "LAB/link/NS_A/IF_A/NS_B/IF_B", or of
"LAB/bridge/NAME", as a big-endian number) modulo 2^24 - 4096. Both hosts derive the same
number from the same file; two crossing links of one lab with the same VNI are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Optional

from veth_wrap.errors import UsageError
from veth_wrap.model import names
from veth_wrap.model.hosts import Host, Hosts, of_lab
from veth_wrap.model.names import Role
from veth_wrap.model.topology import Bridge, End, Lab, Link

VNI_MIN = 4096  # small VNIs are the ones people pick by hand
VNI_SPAN = 2 ** 24 - VNI_MIN
OVERHEAD = {4: 50, 6: 70}  # outer Ethernet 14 + IP 20/40 + UDP 8 + VXLAN 8


@dataclass(frozen=True)
class Underlay:
    """The device that holds a host's underlay address, and its MTU."""

    dev: Optional[str]
    mtu: int


@dataclass(frozen=True)
class Tunnel:
    """A VXLAN end on this host: the device inside a lab namespace, and where it sends."""

    end: End  # its namespace, name, role, addresses, bridge (master) and link options
    vni: int
    local: str
    remotes: tuple[str, ...]
    port: int
    mtu: int
    dev: Optional[str]  # the underlay device
    far: tuple[tuple[str, str, str], ...] = ()  # (host, namespace, address) across it


def vni(lab: str, key: str) -> int:
    """The VNI of a crossing link or stretched bridge, the same on every host."""
    digest = hashlib.sha256(f"{lab}/{key}".encode()).digest()
    return VNI_MIN + int.from_bytes(digest[:4], "big") % VNI_SPAN


def link_key(link: Link) -> str:
    return f"link/{link.a.netns}/{link.a.ifname}/{link.b.netns}/{link.b.ifname}"


def tunnel_ifname(lab: str, index: int = 0) -> str:
    """The VXLAN port of the lab's stretched bridge number `index`, in the lab's hub."""
    head = "vx-" if index == 0 else f"vx{index}-"
    return head + names.short(lab, names.IFNAMSIZ - len(head))


def crossing(lab: Lab, hosts: Hosts) -> list[Link]:
    """The point-to-point links whose ends sit on two hosts."""
    return [link for link in lab.links if not link.b.master
            and hosts.of(link.a.netns) != hosts.of(link.b.netns)]


def bridge_hosts(lab: Lab, hosts: Hosts, bridge: Optional[Bridge] = None) -> list[Host]:
    """The hosts holding members of one bridge (default: the first), in file order."""
    bridge = bridge or lab.bridges[0]
    members = {link.a.netns for link in lab.links
               if (link.b.netns, link.b.master) == (bridge.netns, bridge.name)}
    return [host for host in hosts.hosts if members & set(host.namespaces)]


def stretched(lab: Lab, hosts: Hosts) -> list[tuple[int, Bridge]]:
    """(index, bridge) of each bridge with members on more than one host."""
    return [(i, bridge) for i, bridge in enumerate(lab.bridges)
            if len(bridge_hosts(lab, hosts, bridge)) > 1]


def check_vnis(lab: Lab, hosts: Hosts) -> dict[int, str]:
    """{VNI: what uses it} for the whole lab; two users of one VNI are refused."""
    found: dict[int, str] = {}
    uses = [(link_key(link), f"link {link.a.netns}-{link.b.netns}")
            for link in crossing(lab, hosts)]
    uses += [(f"bridge/{bridge.name}", f"bridge {bridge.name}")
             for _, bridge in stretched(lab, hosts)]
    for key, what in uses:
        number = vni(lab.name, key)
        if number in found:
            raise UsageError(f"{found[number]} and {what} would share VNI {number}",
                             "rename one link's interfaces (interfaces: [...]) or the lab")
        found[number] = what
    return found


def share(lab: Lab, name: str, underlay: Underlay) -> Lab:
    """The part of lab that host `name` builds, with its VXLAN ends in extra['tunnels'] and the
    services of its namespaces."""
    from veth_wrap.model import labservices  # only files with hosts need it: create stays lean

    hosts = of_lab(lab)
    host = hosts.get(name)
    check_vnis(lab, hosts)
    local = set(host.namespaces)
    limit = underlay.mtu - OVERHEAD[host.version]
    spread = stretched(lab, hosts)
    wide = {bridge.name for _, bridge in spread}
    links, tunnels = [], []
    for link in lab.links:
        if link.b.master:
            if link.a.netns in local:
                links.append(_fit(link, limit) if link.b.master in wide else link)
        elif link.a.netns in local and link.b.netns in local:
            links.append(link)
        elif link.a.netns in local or link.b.netns in local:
            tunnels.append(_link_tunnel(lab, hosts, host, link, underlay, limit))
    here = {link.b.master for link in links if link.b.master}  # bridges with members here
    tunnels += [_bridge_tunnel(lab, hosts, host, underlay, limit, i, bridge)
                for i, bridge in spread if bridge.name in here]
    bridged = bool(here)
    return Lab(lab.name, lab.kind, tuple(ns for ns in lab.members if ns in local), tuple(links),
               hub=lab.hub if bridged else None,
               bridges=tuple(b for b in lab.bridges if b.name in here),
               uplinks=tuple(u for u in lab.uplinks if u.netns in local),
               routes=tuple(r for r in lab.routes if r.netns in local),
               forwarding=tuple(ns for ns in lab.forwarding if ns in local), subnet=lab.subnet,
               extra={"hosts": hosts, "host": name, "tunnels": tuple(tunnels), "full": lab,
                      labservices.KEY: tuple(s for s in labservices.of_lab(lab) if s[0] in local)})


def tunnels_of(lab: Lab) -> tuple[Tunnel, ...]:
    """The VXLAN ends of a host's share (none for a lab on one host)."""
    return lab.extra.get("tunnels", ())


def tunnel_ends(lab: Lab, ns: Optional[str]) -> list[End]:
    """The VXLAN ends of a share inside one namespace, as ends."""
    return [t.end for t in tunnels_of(lab) if t.end.netns == ns]


def _mtu(end: End, limit: int) -> int:
    """The end's MTU: as the file gives it, at most what the underlay carries."""
    given = end.opts.mtu if end.opts and end.opts.mtu else None
    if given and given > limit:
        raise UsageError(f"{end.ifname} in {end.netns} asks for MTU {given} but the underlay "
                         f"carries {limit} inside VXLAN", f"give mtu: {limit} or less")
    return given or limit


def _sized(end: End, limit: int) -> End:
    from veth_wrap.model.linkopts import LinkOpts

    opts = dataclasses.replace(end.opts or LinkOpts(), mtu=_mtu(end, limit))
    return dataclasses.replace(end, opts=opts)


def _fit(link: Link, limit: int) -> Link:
    """A member's link to a stretched bridge, both ends at the VXLAN's MTU (or less)."""
    return Link(_sized(link.a, limit), _sized(link.b, limit))


def _link_tunnel(lab: Lab, hosts: Hosts, host: Host, link: Link, underlay: Underlay,
                 limit: int) -> Tunnel:
    here, there = (link.a, link.b) if link.a.netns in host.namespaces else (link.b, link.a)
    far = hosts.of(there.netns)
    address = there.addresses[0].split("/")[0] if there.addresses else ""
    mtus = {_mtu(here, limit), _mtu(there, limit)}
    if len(mtus) > 1:
        raise UsageError(f"link {link.a.netns}-{link.b.netns} would have two MTUs",
                         "give both ends the same mtu")
    return Tunnel(here, vni(lab.name, link_key(link)), host.underlay, (far.underlay,),
                  hosts.port, mtus.pop(), underlay.dev,
                  ((far.name, there.netns, address),) if address else ())


def _bridge_tunnel(lab: Lab, hosts: Hosts, host: Host, underlay: Underlay,
                   limit: int, index: int, bridge: Bridge) -> Tunnel:
    others = [h for h in bridge_hosts(lab, hosts, bridge) if h.name != host.name]
    far = tuple((hosts.of(link.a.netns).name, link.a.netns, link.a.addresses[0].split("/")[0])
                for link in lab.links if link.b.master == bridge.name and link.a.addresses
                and link.a.netns not in host.namespaces)
    end = End(lab.hub, tunnel_ifname(lab.name, index), Role.PORT, master=bridge.name)
    return Tunnel(end, vni(lab.name, f"bridge/{bridge.name}"), host.underlay,
                  tuple(h.underlay for h in others), hosts.port, limit, underlay.dev, far)


def underlay_of(root, address: str) -> Underlay:
    """The root namespace's device holding the underlay address, or refuse."""
    for link in root.links.values():
        if any(a.split("/")[0] == address for a in link.addresses):
            return Underlay(link.ifname, link.mtu or 1500)
    raise UsageError(f"no interface of this host holds the underlay address {address}",
                     "run this on the host the file names, or fix its underlay address")


def local_hosts(hosts: Hosts, root) -> list[Host]:
    """The hosts whose underlay address this machine's root namespace holds."""
    held = {a.split("/")[0] for link in root.links.values() for a in link.addresses}
    return [host for host in hosts.hosts if host.underlay in held]


def tunnel_info(link) -> Optional[dict]:
    """A VXLAN device as show reports it (None for anything else)."""
    info = link.raw.get("linkinfo", {})
    if info.get("info_kind") != "vxlan":
        return None
    data = info.get("info_data", {})
    return {"vni": data.get("id"), "local": data.get("local"), "remote": data.get("remote"),
            "port": data.get("port"), "learning": data.get("learning")}
