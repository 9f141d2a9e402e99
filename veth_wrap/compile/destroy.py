"""Compile what the kernel holds into the plan that removes vethwrap's objects, and no more."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from veth_wrap.compile import borrow
from veth_wrap.model.facts import LabView, NetnsState, find_peer
from veth_wrap.model.names import Role, port_ifname
from veth_wrap.model.procfacts import Proc, Stopped
from veth_wrap.steps import Kind, Op, Plan


@dataclass
class Teardown(Plan):
    """A destroy plan and what it removes (namespaces, and links where the namespace stays);
    the processes to stop before it runs, and those it stopped."""

    namespaces: list[str] = field(default_factory=list)
    links: list[tuple[Optional[str], str]] = field(default_factory=list)  # (namespace, link)
    pending: list[Proc] = field(default_factory=list)
    doomed: dict[int, str] = field(default_factory=dict)  # netns inode -> name or label
    stopped: list[Stopped] = field(default_factory=list)
    holders: dict[int, int] = field(default_factory=dict)  # unnamed netns inode -> a pid in it
    cgroups: list[str] = field(default_factory=list)  # service cgroups (LAB:NS:NAME) to empty
    gateways: list[Proc] = field(default_factory=list)  # uplink gateways (pasta) that go

    def before(self) -> list[str]:
        """The processes that are stopped and the service cgroups emptied before the steps."""
        if not self.pending and not self.cgroups:
            return []
        told = [f"first, stop {len(self.pending)} process(es) inside: SIGTERM, then SIGKILL "
                f"after the grace period"] if self.pending else ["first, empty and remove "
                                                                "service cgroups"]
        told += [f"  {p.netns} pid {p.pid}{f' ({p.service})' if p.service else ''}: "
                 f"{p.command()}" for p in self.pending]
        return told + ([f"  service cgroup(s): {', '.join(self.cgroups)}"] if self.cgroups
                       else [])

    def summary(self) -> str:
        """What it removes, counted by kind."""
        if self.empty:
            return "nothing of vethwrap's to remove"
        return (f"removed {len(self.namespaces)} namespace(s) and {len(self.links)} link(s) "
                "of vethwrap's")

    def to_json(self) -> dict:
        """The stable JSON shape of what destroy removed and stopped."""
        return {"namespaces": list(self.namespaces),
                "links": [{"namespace": ns, "interface": name} for ns, name in self.links],
                "notes": list(self.notes), "stopped": [done.to_json() for done in self.stopped]}


def destroy_plan(targets: Iterable[str], facts: dict[str, NetnsState],
                 views: dict[str, LabView], root: Optional[NetnsState] = None,
                 named: Iterable[str] = ()) -> Teardown:
    """Delete the namespaces vethwrap created among targets, and its links in the others."""
    plan = Teardown()
    targets = [ns for ns in dict.fromkeys(targets)]
    doomed: list[str] = []
    vanishing: set[tuple[Optional[str], str]] = set()  # peers that go with an end deleted
    settings: list[Op] = []
    for ns in targets:
        st = facts.get(ns)
        if st is None:
            plan.notes.append(f"{ns}: no such namespace, nothing to do")
        elif not st.labs():
            plan.notes.append(f"{ns}: holds nothing of vethwrap's, left alone")
        elif st.lo_mark and st.lo_mark.role in (Role.NETNS, Role.HUB):
            doomed.append(ns)
        else:
            settings += _kept(plan, ns, st, facts, root, vanishing)
    plan.add(settings, comment="settings create changed there, put back")
    doomed += _empty_hubs(targets, facts, views)
    root_ops = _root_ops(targets, views, root, frozenset(named))
    plan.add(root_ops, comment="vethwrap's links in the root namespace")
    plan.links += [(None, op.target) for op in root_ops]
    plan.add(_deletions(doomed), comment="namespaces vethwrap created")
    plan.namespaces = doomed
    return plan


def _kept(plan: Teardown, ns: str, st: NetnsState, facts: dict[str, NetnsState],
          root: Optional[NetnsState], vanishing: set) -> list[Op]:
    """Delete vethwrap's links in a namespace that stays (an end once: its peer goes with
    it) and put lo back; returns the sysctl ops, run from the root namespace."""
    gone = [link for link in st.marked()
            if link.mark.role != Role.PORT and (ns, link.ifname) not in vanishing]
    for link in gone:
        peer = find_peer(link, ns, facts, root)
        if peer is not None:
            vanishing.add(peer)
    inside, outside = borrow.restore_ops(ns, st)
    what = (["vethwrap's links"] if gone else []) + (["lo as create found it"] if inside else [])
    plan.add([Op(Kind.DEL_LINK, ("link", "del", link.ifname), target=link.ifname)
              for link in gone] + inside, netns=ns,
             comment=f"{' and '.join(what)} in {ns}, which stays")
    plan.links += [(ns, link.ifname) for link in gone]
    return outside


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


def _root_ops(targets: list[str], views: dict[str, LabView], root: Optional[NetnsState],
              named: frozenset = frozenset()) -> list[Op]:
    """Ports of a host bridge whose members go; the bridge once every port goes.

    The root namespace is read for every lab, its members only where asked: a lab none of
    whose members was read must not look memberless. A port goes with its member, named
    after it; the bridge when all its ports go, or, with none left, when its lab is named.
    """
    if root is None:
        return []
    going = {port_ifname(ns) for ns in targets}
    ops = []
    for view in views.values():
        roles = {name: root.links[name].mark.role for name in view.root_links
                 if name in root.links and root.links[name].mark}
        ports = [name for name, role in roles.items() if role == Role.PORT]
        # a lab of several bridges names its other ports vp1-NS, vp2-NS...: by their member
        going |= _ports_of(ports, targets)
        whole = view.name in named or (bool(ports) and all(name in going for name in ports))
        ops += [Op(Kind.DEL_LINK, ("link", "del", name), target=name)
                for name, role in roles.items()
                if whole or (role == Role.PORT and name in going)]
    return ops


def _ports_of(ports: list[str], targets: list[str]) -> set[str]:
    """The ports named after one of targets, whatever the number of their bridge."""
    numbers = {int(m.group(1) or 0) for m in (re.match(r"vp(\d*)-", p) for p in ports) if m}
    names = {port_ifname(ns, k) for k in numbers for ns in targets}
    return {name for name in ports if name in names}


def teardown_of(plan: Plan, namespaces: Iterable[str]) -> Optional[Teardown]:
    """Removing what plan built, if it created every one of namespaces and nothing outside them.

    Then deleting those namespaces by name removes it all, with nothing to read first: the
    plan made them and marked them. None when the lab uses namespaces that were there
    before, or the root namespace: those keep what is not vethwrap's, so destroy reads them.
    """
    made: list[str] = []
    for op in (op for step in plan.steps for op in step.ops):
        for key in op.creates:
            if key[0] == "link" and key[1] is None:
                return None
            if key[0] == "netns":
                made.append(key[1])
    if not made or set(namespaces) - set(made):
        return None
    teardown = Teardown()
    teardown.add(_deletions(made), comment="namespaces vethwrap created")
    teardown.namespaces = made
    return teardown


def _deletions(namespaces: Iterable[str]) -> list[Op]:
    """`netns del` of each namespace."""
    return [Op(Kind.DEL_NETNS, ("netns", "del", ns), target=ns, netns=ns) for ns in namespaces]
