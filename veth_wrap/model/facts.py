"""Facts: the kernel's objects as vethwrap's model sees them (read by kernel/, used by compile/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.model.names import Mark, Role, p2p_ifname
from veth_wrap.model.topology import members_and_hub


@dataclass(frozen=True)
class LinkState:
    """One interface as `ip -j -d addr show` reports it."""

    ifname: str
    ifindex: int
    kind: str
    up: bool
    operstate: str
    addresses: tuple[str, ...]
    mark: Optional[Mark] = None
    master: Optional[str] = None
    peer_index: Optional[int] = None
    peer_netnsid: Optional[int] = None
    mtu: int = 0
    mac: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def carrier(self) -> bool:
        """True when the link is up and so is whatever is at its other end."""
        return self.operstate in ("UP", "UNKNOWN")

    @property
    def lower_up(self) -> bool:
        """True when the kernel reports carrier now (LOWER_UP), before operstate catches up.

        The kernel updates operstate through linkwatch, which may lag by up to a second;
        LOWER_UP is set the moment both ends of a veth are up, and traffic flows from then.
        """
        flags = self.raw.get("flags")
        return "LOWER_UP" in flags if flags is not None else self.carrier


@dataclass
class NetnsState:
    """One namespace: its links, routes and whatever else was asked for."""

    name: Optional[str]
    links: dict[str, LinkState] = field(default_factory=dict)
    routes: list[dict] = field(default_factory=list)
    forwarding: Optional[bool] = None

    @property
    def lo_mark(self) -> Optional[Mark]:
        """The namespace's own mark, kept on lo."""
        lo = self.links.get("lo")
        return lo.mark if lo else None

    def marked(self) -> list[LinkState]:
        """The links that carry a vethwrap mark (lo excluded)."""
        return [link for link in self.links.values() if link.mark and link.ifname != "lo"]

    def labs(self) -> set[str]:
        """Every lab that has a mark in this namespace."""
        found = {link.mark.lab for link in self.marked()}
        return found | ({self.lo_mark.lab} if self.lo_mark else set())

    def address_owner(self, address: str) -> Optional[str]:
        """The interface that holds an address (with prefix), if any."""
        ip = address.split("/")[0]
        for link in self.links.values():
            if any(a.split("/")[0] == ip for a in link.addresses):
                return link.ifname
        return None


@dataclass
class LabView:
    """A lab as found in the kernel."""

    name: str
    kind: str
    members: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    hub: Optional[str] = None
    root_links: list[str] = field(default_factory=list)

    def namespaces(self) -> list[str]:
        """Every namespace of the lab found, the hub last."""
        return list(members_and_hub(self.members, self.hub))


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


def find_peer(link: LinkState, here: Optional[str], facts: dict[str, NetnsState],
              root: Optional[NetnsState] = None, ids: Optional[dict] = None
              ) -> Optional[tuple[Optional[str], str]]:
    """The (namespace, interface) at the other end of a veth: the one peer finder.

    With ids (each namespace's netns ids of its peers' namespaces) the link's netnsid names
    the peer's namespace, and its ifindex the interface there. Without them, the ifindex
    both ways: indexes count per namespace, so many namespaces hold a matching pair; a
    marked end's peer carries the same lab's mark, a point-to-point end is named after it.
    """
    if link.kind != "veth" or link.peer_index is None:
        return None
    if ids is not None:
        where = here if link.peer_netnsid is None else ids.get(here, {}).get(link.peer_netnsid)
        st = facts.get(where) if where else None
        for other in st.links.values() if st else ():
            if other.ifindex == link.peer_index:
                return where, other.ifname
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
        if link.mark.role == Role.UPLINK:  # the host's address, lent by pasta
            continue
        mine = [a.split("/")[0] for a in link.addresses
                if version is None or (":" in a) == (version == 6)]
        if not mine:
            continue
        peer = find_peer(link, target, {source: facts[source]} if source in facts else {})
        if peer and peer[0] == source:
            return mine[0]
        fallback = fallback or mine[0]
    return fallback
