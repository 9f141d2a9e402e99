"""Find vethwrap's labs in what the kernel holds, from the marks alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from veth_wrap.kernel import state
from veth_wrap.kernel.state import LinkState, NetnsState
from veth_wrap.model.names import Role, hub_netns, p2p_ifname
from veth_wrap.run.runner import Runner, default_runner


@dataclass
class LabView:
    """A lab as found in the kernel."""

    name: str
    kind: str
    members: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    hub: Optional[str] = None
    root_links: list[str] = field(default_factory=list)


def scan(namespaces: Optional[Iterable[str]] = None, runner: Optional[Runner] = None,
         routes: bool = True) -> tuple[dict[str, NetnsState], NetnsState]:
    """Read the given namespaces (all when None) plus the hubs of their labs, and the root."""
    runner = runner or default_runner()
    existing = state.list_netns(runner)
    wanted = existing if namespaces is None else [ns for ns in namespaces if ns in existing]
    facts = state.read(wanted, runner, routes=routes)
    hubs = {hub_netns(lab) for st in facts.values() for lab in st.labs()}
    extra = [hub for hub in hubs if hub in existing and hub not in facts]
    facts.update(state.read(extra, runner, routes=routes))
    return facts, state.read_root(runner)


def labs(facts: dict[str, NetnsState], root: Optional[NetnsState] = None) -> dict[str, LabView]:
    """Group namespaces into labs by their marks."""
    found: dict[str, LabView] = {}
    for ns, st in sorted(facts.items()):
        marks = [link.mark for link in st.links.values() if link.mark]
        for mark in marks:
            view = found.setdefault(mark.lab, LabView(mark.lab, mark.kind))
            if mark.role == Role.HUB:
                view.hub = ns
            elif ns not in view.members and ns != view.hub:
                view.members.append(ns)
        if st.lo_mark and st.lo_mark.role in (Role.NETNS, Role.HUB):
            found[st.lo_mark.lab].created.append(ns)
    for view in found.values():
        if view.hub in view.members:
            view.members.remove(view.hub)
    for link in (root.marked() if root else []):
        view = found.setdefault(link.mark.lab, LabView(link.mark.lab, link.mark.kind))
        view.root_links.append(link.ifname)
    return found


def peer_of(link: LinkState, here: Optional[str], facts: dict[str, NetnsState],
            root: Optional[NetnsState] = None) -> Optional[tuple[Optional[str], str]]:
    """The (namespace, interface) at the other end of a veth, found by ifindex both ways.

    Indexes count per namespace, so many namespaces hold a matching pair: a marked end's
    peer carries the same lab's mark, and a point-to-point end is named after its peer.
    """
    if link.peer_index is None:
        return None
    places = list(facts.items()) + ([(None, root)] if root else [])
    found = [(ns, other) for ns, st in places if ns != here for other in st.links.values()
             if other.ifindex == link.peer_index and other.peer_index == link.ifindex
             and other.kind == "veth"]
    if link.mark:
        found = [(ns, other) for ns, other in found
                 if other.mark and other.mark.lab == link.mark.lab]
    named = [(ns, other) for ns, other in found if ns and link.ifname == p2p_ifname(ns)]
    best = (named or found or [None])[0]
    return (best[0], best[1].ifname) if best else None


def target_address(facts: dict[str, NetnsState], source: str, target: str,
                   version: Optional[int] = None) -> Optional[str]:
    """Where source should reach target: on their shared link, else target's first address."""
    st = facts.get(target)
    if st is None:
        return None
    fallback = None
    for link in sorted(st.marked(), key=lambda item: item.ifname):
        mine = [a.split("/")[0] for a in link.addresses
                if version is None or (":" in a) == (version == 6)]
        if not mine:
            continue
        peer = peer_of(link, target, {source: facts[source]} if source in facts else {})
        if peer and peer[0] == source:
            return mine[0]
        fallback = fallback or mine[0]
    return fallback
