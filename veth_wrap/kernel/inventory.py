"""Find vethwrap's labs in what the kernel holds, from the marks alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

from veth_wrap.errors import NoSuchNamespace, UsageError
from veth_wrap.kernel import state
from veth_wrap.model.facts import LabView, NetnsState, find_peer, labs, target_address
from veth_wrap.model.names import Role, hub_netns
from veth_wrap.model.topology import Bridge, End, Kind, Lab, Link
from veth_wrap.run.runner import Runner, default_runner

if TYPE_CHECKING:  # the destination's types only: create --dry-run starts without them
    from veth_wrap.model.destination import Address, Destination

__all__ = ["LabView", "find_peer", "labs", "scan", "target_address"]


def scan(namespaces: Optional[Iterable[str]] = None, runner: Optional[Runner] = None,
         routes: bool = True, forwarding: Iterable[str] = ()
         ) -> tuple[dict[str, NetnsState], NetnsState]:
    """Read the given namespaces (all when None) plus the hubs of their labs, and the root."""
    runner = runner or default_runner()
    existing = state.list_netns(runner)
    wanted = existing if namespaces is None else [ns for ns in namespaces if ns in existing]
    facts = state.read(wanted, runner, routes=routes, forwarding=forwarding)
    hubs = {hub_netns(lab) for st in facts.values() for lab in st.labs()}
    extra = [hub for hub in hubs if hub in existing and hub not in facts]
    facts.update(state.read(extra, runner, routes=routes, forwarding=forwarding))
    return facts, state.read_root(runner)


def no_such_lab(name: str) -> UsageError:
    """The refusal for a lab the kernel does not hold."""
    return UsageError(f"no lab {name} in the kernel", "see 'vethwrap show' for the labs")


def one_lab(views: dict[str, LabView], name: str) -> dict[str, LabView]:
    """Only the lab asked for; raise no_such_lab when the kernel does not hold it."""
    if name not in views:
        raise no_such_lab(name)
    return {name: views[name]}


def portless_hubs(names: list[str], facts: dict[str, NetnsState],
                  runner: Optional[Runner] = None) -> list[str]:
    """The hubs of labs named after names (a lab is named after its first namespace unless
    told otherwise) that hold no port: what a create killed before its first member had
    made leaves. They are read into facts; a hub with a port has members, and stays."""
    runner = runner or default_runner()
    existing = set(state.list_netns(runner))
    hubs = {hub_netns(ns): ns for ns in names if hub_netns(ns) in existing - set(names)}
    facts.update(state.read([hub for hub in hubs if hub not in facts], runner, routes=False))
    return [hub for hub, lab in hubs.items() if _empty_hub(facts[hub], lab)]


def _empty_hub(st: NetnsState, lab: str) -> bool:
    mark = st.lo_mark
    return bool(mark) and mark.lab == lab and mark.role == Role.HUB \
        and not any(link.mark.role == Role.PORT for link in st.marked())


def lab_from_kernel(name: str, runner: Optional[Runner] = None) -> Lab:
    """The lab `name` as the kernel holds it, rebuilt from vethwrap's marks."""
    runner = runner or default_runner()
    facts, root = scan(None, runner, routes=False)
    ids = state.netns_ids(list(facts), runner)
    view = one_lab(labs(facts, root), name)[name]
    places = [(ns, facts[ns]) for ns in view.namespaces()]
    places += [(None, root)] if view.root_links else []
    links, bridges, seen = [], [], set()
    for ns, st in places:
        for link in sorted(st.marked(), key=lambda item: item.ifname):
            if link.mark.lab != name or (ns, link.ifname) in seen:
                continue
            if link.kind == "bridge":
                bridges.append(Bridge(ns, link.ifname))
                continue
            peer = find_peer(link, ns, facts, ids=ids) if ns else find_peer(link, ns, facts)
            if peer is None:
                continue
            seen.update({(ns, link.ifname), peer})
            other = (facts.get(peer[0]) if peer[0] else root).links[peer[1]]
            ends = [_end(ns, link), _end(peer[0], other)]
            links.append(Link(*sorted(ends, key=lambda e: e.master is not None)))
    kind = Kind(view.kind) if view.kind in Kind._value2member_map_ else Kind.CUSTOM
    return Lab(name, kind, tuple(view.members), tuple(links), hub=view.hub,
               bridges=tuple(bridges))


def _end(ns: Optional[str], link) -> End:
    return End(ns, link.ifname, link.mark.role if link.mark else "", link.addresses, link.master)


def destination(namespace: str, dest: Destination, runner: Optional[Runner] = None) -> Address:
    """The address given, or the address (of one IP version) of a namespace vethwrap wired."""
    import ipaddress

    runner = runner or default_runner()
    existing = state.list_netns(runner)
    if namespace not in existing:
        raise NoSuchNamespace(namespace)
    if dest.address is not None:
        return dest.address
    if dest.netns not in existing:
        raise NoSuchNamespace(dest.netns)
    facts = state.read([namespace, dest.netns], runner, routes=False)
    address = target_address(facts, namespace, dest.netns, dest.version)
    if address is None and dest.version:
        raise UsageError(f"{dest.netns!r} has no IPv{dest.version} address from vethwrap",
                         "build the lab with --ipv6 for dual stack, or leave out -6")
    if address is None:
        raise UsageError(f"{dest.netns!r} is neither an address nor a namespace vethwrap wired",
                         "give an IPv4 or IPv6 address, or see 'vethwrap show'")
    return ipaddress.ip_address(address)
