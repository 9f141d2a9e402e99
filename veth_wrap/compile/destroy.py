"""Compile what the kernel holds into the plan that removes vethwrap's objects, and no more."""

from __future__ import annotations

from typing import Iterable, Optional

from veth_wrap.kernel.inventory import LabView
from veth_wrap.kernel.state import NetnsState
from veth_wrap.model.names import Role, port_ifname
from veth_wrap.steps import Op, Plan


def destroy_plan(targets: Iterable[str], facts: dict[str, NetnsState],
                 views: dict[str, LabView], root: Optional[NetnsState] = None) -> Plan:
    """Delete the namespaces vethwrap created among targets, and its links in the others."""
    plan = Plan()
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
            plan.add((Op(("link", "del", link.ifname)) for link in st.marked()
                      if link.mark.role != Role.PORT), netns=ns,
                     comment=f"vethwrap's links in {ns}, which stays")
    doomed += _empty_hubs(targets, facts, views)
    plan.add(_root_ops(targets, views, root), comment="vethwrap's links in the root namespace")
    plan.add((Op(("netns", "del", ns)) for ns in doomed), comment="namespaces vethwrap created")
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
