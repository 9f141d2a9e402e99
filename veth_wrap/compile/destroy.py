"""Compile what the kernel holds into the plan that removes vethwrap's objects, and no more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from veth_wrap.model.facts import LabView, NetnsState
from veth_wrap.model.names import Role, port_ifname
from veth_wrap.steps import Op, Plan


@dataclass
class Teardown(Plan):
    """A destroy plan, and what it removes: namespaces, and links where the namespace stays."""

    namespaces: list[str] = field(default_factory=list)
    links: list[tuple[Optional[str], str]] = field(default_factory=list)  # (namespace, link)

    def summary(self) -> str:
        """What it removes, counted by kind."""
        if self.empty:
            return "nothing of vethwrap's to remove"
        return (f"removed {len(self.namespaces)} namespace(s) and {len(self.links)} link(s) "
                "of vethwrap's")

    def to_json(self) -> dict:
        """The stable JSON shape of what destroy removed."""
        return {"namespaces": list(self.namespaces),
                "links": [{"namespace": ns, "interface": name} for ns, name in self.links],
                "notes": list(self.notes)}


def destroy_plan(targets: Iterable[str], facts: dict[str, NetnsState],
                 views: dict[str, LabView], root: Optional[NetnsState] = None) -> Teardown:
    """Delete the namespaces vethwrap created among targets, and its links in the others."""
    plan = Teardown()
    targets = [ns for ns in dict.fromkeys(targets)]
    doomed: list[str] = []
    for ns in targets:
        st = facts.get(ns)
        if st is None:
            plan.notes.append(f"{ns}: no such namespace, nothing to do")
        elif not st.labs():
            plan.notes.append(f"{ns}: holds nothing of vethwrap's, left alone")
        elif st.lo_mark and st.lo_mark.role in (Role.NETNS, Role.HUB):
            doomed.append(ns)
        else:
            kept = [link.ifname for link in st.marked() if link.mark.role != Role.PORT]
            plan.add((Op(("link", "del", name)) for name in kept), netns=ns,
                     comment=f"vethwrap's links in {ns}, which stays")
            plan.links += [(ns, name) for name in kept]
    doomed += _empty_hubs(targets, facts, views)
    root_ops = _root_ops(targets, views, root)
    plan.add(root_ops, comment="vethwrap's links in the root namespace")
    plan.links += [(None, op.args[-1]) for op in root_ops]
    plan.add((Op(("netns", "del", ns)) for ns in doomed), comment="namespaces vethwrap created")
    plan.namespaces = doomed
    return plan


def _empty_hubs(targets: list[str], facts: dict[str, NetnsState],
                views: dict[str, LabView]) -> list[str]:
    """Hubs whose every member goes (or is already gone)."""
    going = set(targets)
    hubs = []
    for view in views.values():
        if view.hub and view.hub not in going and view.hub in facts \
                and set(view.members) <= going and (going & set(view.members) or not view.members):
            hubs.append(view.hub)
    return hubs


def _root_ops(targets: list[str], views: dict[str, LabView],
              root: Optional[NetnsState]) -> list[Op]:
    """Ports of a host bridge for the members that go; the bridge once none stays."""
    if root is None:
        return []
    going = set(targets)
    ops = []
    for view in views.values():
        if not view.root_links:
            continue
        all_go = set(view.members) <= going
        for name in view.root_links:
            peer_gone = _port_member(name, view, going)
            if peer_gone or all_go:
                ops.append(Op(("link", "del", name)))
    return ops


def _port_member(port: str, view: LabView, going: set[str]) -> bool:
    return any(port_ifname(member) == port for member in going & set(view.members))
