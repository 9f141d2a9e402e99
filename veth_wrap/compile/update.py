"""Edited lab files: remove what the kernel holds of a lab that the Lab no longer has."""

from __future__ import annotations

import dataclasses
from typing import Optional

from veth_wrap.compile.create import create_plan
from veth_wrap.compile.uplink import uplink_names
from veth_wrap.model.facts import LabView, NetnsState, find_peer, labs
from veth_wrap.model.hostshare import tunnel_ends
from veth_wrap.model.names import Role
from veth_wrap.model.topology import Lab
from veth_wrap.steps import Kind, Op, Plan


def update_plan(lab: Lab, everything: dict[str, NetnsState], root: NetnsState,
                ids: dict[str, dict[int, str]], netem: bool = True, host_ipv6: bool = True
                ) -> Plan:
    """Removals of what the Lab dropped, then the create plan for what it added.

    everything holds the facts of every namespace (read with the lab's forwarding), ids the
    netns ids each gives its peers' namespaces (kernel/state.netns_ids).
    """
    view = labs(everything, root).get(lab.name)
    facts = {ns: everything[ns] for ns in lab.namespaces() if ns in everything}
    removal, gone = removal_plan(lab, everything, view, ids)
    pruned = {ns: prune(st, lab, gone) for ns, st in facts.items()
              if ("netns", ns) not in gone}
    needs_root = any(e.netns is None for e in lab.ends())
    create = create_plan(lab, pruned, root if needs_root else None, netem, host_ipv6)
    return Plan(removal.steps + create.steps, removal.notes + create.notes)


def removal_plan(lab: Lab, facts: dict[str, NetnsState], view: Optional[LabView],
                 ids: dict) -> tuple[Plan, set]:
    """The ops that remove the lab's objects missing from `lab`, and the keys they remove."""
    plan, gone = Plan(), set()
    facts = _Facts(facts, ids)
    if view is None:
        return plan, gone
    dropped = [ns for ns in view.created if ns not in lab.namespaces()]
    # Links into a dropped namespace are deleted from the staying side: a namespace's veths
    # die asynchronously after `netns del`, too late for the create plan that follows.
    gone.update(("netns", ns) for ns in dropped)
    for ns in sorted(set(view.namespaces())):
        if ns in facts and ("netns", ns) not in gone:
            plan.add(_namespace_ops(lab, ns, facts, gone), netns=ns,
                     comment=f"what the file no longer has in {ns}")
    plan.add((Op(Kind.DEL_NETNS, ("netns", "del", ns), target=ns, netns=ns) for ns in dropped),
             comment="namespaces the file no longer has")
    return plan, gone


class _Facts(dict):
    """The namespaces' facts, plus the netns ids that find veth peers."""

    def __init__(self, facts: dict, ids: dict) -> None:
        super().__init__(facts)
        self.ids = ids


def _drop(link, ns: Optional[str], facts: _Facts, gone: set) -> None:
    """Note a link as gone, with its veth peer (deleting one end deletes both)."""
    gone.add(("link", ns, link.ifname))
    other = find_peer(link, ns, facts, ids=facts.ids)
    if other:
        gone.add(("link",) + other)


def _namespace_ops(lab: Lab, ns: str, facts: dict[str, NetnsState], gone: set) -> list[Op]:
    st = facts[ns]
    wanted = {end.ifname: end for end in lab.ends_in(ns) + tunnel_ends(lab, ns)}
    bridges = {b.name for b in lab.bridges if b.netns == ns} | uplink_names(lab, ns)
    ops = []
    for link in sorted(st.marked(), key=lambda item: item.ifname):
        if link.mark.lab != lab.name or ("link", ns, link.ifname) in gone:
            continue
        if link.ifname not in wanted and link.ifname not in bridges:
            _drop(link, ns, facts, gone)
            ops.append(Op(Kind.DEL_LINK, ("link", "del", link.ifname), target=link.ifname))
            continue
        end = wanted.get(link.ifname) if _owns_addresses(lab) else None
        for address in link.addresses if end else ():
            if address not in end.addresses:
                gone.add(("addr", ns, address))
                ops.append(Op(Kind.DEL_ADDRESS, ("addr", "del", address, "dev", link.ifname),
                              target=link.ifname))
    return ops + (_route_ops(lab, ns, st, gone) if _owns_addresses(lab) else [])


def _owns_addresses(lab: Lab) -> bool:
    """False for an imported lab: its exec commands address and route, not the file."""
    return "exec" not in lab.extra


def _route_ops(lab: Lab, ns: str, st: NetnsState, gone: set) -> list[Op]:
    """Routes via a gateway on the lab's staying links that the Lab does not list."""
    ours = {link.ifname for link in st.marked() if link.mark.lab == lab.name
            and link.mark.role != Role.UPLINK  # its default route is pasta's
            and ("link", ns, link.ifname) not in gone}
    wanted = {(r.dest, r.via) for r in lab.routes if r.netns == ns}
    ops = []
    for route in st.routes:
        key = (route.get("dst"), route.get("gateway"))
        if route.get("gateway") and route.get("dev") in ours and key not in wanted:
            gone.add(("route", ns) + key)
            ops.append(Op(Kind.DEL_ROUTE, ("route", "del", key[0], "via", key[1], "dev",
                                           route["dev"]), target=key[0]))
    return ops


def prune(st: NetnsState, lab: Lab, gone: set) -> NetnsState:
    """The namespace as it will be once the removals ran."""
    ns = st.name
    links = {}
    for name, link in st.links.items():
        if ("link", ns, name) in gone:
            continue
        kept = tuple(a for a in link.addresses if ("addr", ns, a) not in gone)
        links[name] = dataclasses.replace(link, addresses=kept)
    routes = [r for r in st.routes if ("link", ns, r.get("dev")) not in gone
              and ("route", ns, r.get("dst"), r.get("gateway")) not in gone]
    return NetnsState(ns, links, routes, st.forwarding)
