"""Compile a Lab and the kernel's facts into the plan that builds what is missing."""

from __future__ import annotations

from typing import Optional

from .errors import ConflictError, UsageError
from .names import Mark, Role
from .netem import ip_ops, tc_ops
from .plan import Op, Plan
from .state import NetnsState
from .topology import End, Lab


def create_plan(lab: Lab, facts: dict[str, NetnsState], root: Optional[NetnsState] = None) -> Plan:
    """The steps that turn what the kernel holds into the lab; empty when it is already there."""
    check_conflicts(lab, facts, root)
    plan = Plan()
    missing = [ns for ns in lab.namespaces() if ns not in facts]
    root_ops = [op for ns in missing for op in _netns_add(lab, ns)]
    root_ops += _forwarding_ops(lab, facts)
    if lab.bridges and lab.bridges[0].netns is None:
        root_ops += _bridge_ops(lab, root or NetnsState(None), None)
    plan.add(root_ops, comment="namespaces" if missing else "root namespace")
    if lab.hub:
        hub_state = facts.get(lab.hub, NetnsState(lab.hub))
        hub_ops = _lo_ops(lab, lab.hub, hub_state, Role.HUB) + _bridge_ops(lab, hub_state, lab.hub)
        plan.add(hub_ops, netns=lab.hub, comment=f"bridge in {lab.hub}")
    for ns in lab.members:
        state = facts.get(ns, NetnsState(ns))
        ops = _veth_ops(lab, ns, facts) + _lo_ops(lab, ns, state, Role.NETNS)
        ops += _end_ops(lab, ns, state) + _route_ops(lab, ns, state)
        plan.add(ops, netns=ns, comment=f"namespace {ns}",
                 group="members" if _bridge_only(lab) else "")
    _option_steps(plan, lab, facts, root)
    for ns in lab.namespaces():
        if ns in facts and not any(step.netns == ns for step in plan.steps):
            plan.notes.append(f"{ns}: already as asked")
    return plan


def _bridge_only(lab: Lab) -> bool:
    """True when member steps are independent: every link hangs off the bridge, made earlier."""
    return bool(lab.bridges) and all(link.b.master for link in lab.links)


def _mark(lab: Lab, role: str) -> str:
    return Mark(lab.name, role, lab.kind.value).text()


def _netns_add(lab: Lab, ns: str) -> list[Op]:
    """Add a namespace and mark it at once, so a crash right after leaves it findable."""
    role = Role.HUB if ns == lab.hub else Role.NETNS
    return [Op(("netns", "add", ns), ("netns", "del", ns), creates=(("netns", ns),)),
            Op(("netns", "exec", ns, "ip", "link", "set", "lo", "alias", _mark(lab, role)))]


def _forwarding_ops(lab: Lab, facts: dict[str, NetnsState]) -> list[Op]:
    ops = []
    for ns in lab.forwarding:
        if ns in facts and facts[ns].forwarding:
            continue
        ops.append(Op(("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
                      ("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0"),
                      gone_with=frozenset({("netns", ns)})))
        if 6 in lab.versions():  # the namespace's own sysctl: the host's is left alone
            ops.append(Op(("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"),
                          ("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"),
                          gone_with=frozenset({("netns", ns)})))
    return ops


def _option_steps(plan: Plan, lab: Lab, facts: dict[str, NetnsState],
                  root: Optional[NetnsState]) -> None:
    """MTU of bridge ports and `tc` impairments, on ends this plan creates (live: `link set`)."""
    for ns in (None,) + lab.namespaces():
        state = (root or NetnsState(None)) if ns is None else facts.get(ns, NetnsState(ns))
        new = [end for end in lab.ends_in(ns) if end.opts and end.ifname not in state.links]
        ports = [op for end in new if end.master for op in ip_ops(end.ifname, end.opts)]
        plan.add(ports, netns=ns, comment=f"link options in {ns or 'the root namespace'}")
        plan.add([op for end in new for op in tc_ops(end.ifname, end.opts)], netns=ns,
                 program="tc", comment=f"impairments in {ns or 'the root namespace'}")


def _lo_ops(lab: Lab, ns: str, state: NetnsState, role: str) -> list[Op]:
    """Bring lo up and, in a namespace vethwrap creates, mark it as the lab's."""
    ops = []
    lo = state.links.get("lo")
    if lo is not None and not lo.up and "127.0.0.1/8" not in lo.addresses:
        # lo up adds 127.0.0.1, which lo down keeps: added first, rollback deletes it last
        ops.append(Op(("addr", "add", "127.0.0.1/8", "dev", "lo"),
                      ("addr", "del", "127.0.0.1/8", "dev", "lo"), undo_netns=ns,
                      gone_with=frozenset({("netns", ns)})))
    if lo is None or not lo.up:
        ops.append(Op(("link", "set", "lo", "up"), ("link", "set", "lo", "down"), undo_netns=ns,
                      gone_with=frozenset({("netns", ns)})))
    if state.lo_mark and state.lo_mark.lab == lab.name and state.lo_mark.role != role:
        ops.append(Op(("link", "set", "lo", "alias", _mark(lab, role))))
    return ops


def _bridge_ops(lab: Lab, state: NetnsState, where: Optional[str]) -> list[Op]:
    """The bridge and, for each member, a veth whose far end is created in the member."""
    bridge = lab.bridges[0].name
    ops = []
    if bridge not in state.links:
        ops.append(Op(("link", "add", bridge, "up", "type", "bridge"), ("link", "del", bridge),
                      undo_netns=where, creates=(("link", where, bridge),),
                      gone_with=frozenset({("netns", where)} if where else set())))
        ops.append(Op(("link", "set", bridge, "alias", _mark(lab, Role.BRIDGE))))
    for link in lab.links:
        port, member = link.b, link.a
        if port.master != bridge or port.ifname in state.links:  # lab files mix in p2p links
            continue
        ops.append(Op(("link", "add", port.ifname, "up", "master", bridge, "type", "veth",
                       "peer", "name", member.ifname, "netns", member.netns),
                      ("link", "del", port.ifname), undo_netns=where,
                      creates=(("link", where, port.ifname), ("link", member.netns, member.ifname)),
                      gone_with=frozenset({("netns", where), ("netns", member.netns)})))
        ops.append(Op(("link", "set", port.ifname, "alias", _mark(lab, Role.PORT))))
    return ops


def _veth_ops(lab: Lab, ns: str, facts: dict[str, NetnsState]) -> list[Op]:
    """Point-to-point links whose first end lives in ns, created with both ends in place."""
    ops = []
    for link in lab.links:
        if link.a.netns != ns or link.b.netns is None or link.a.role == Role.MEMBER:
            continue
        if ns in facts and link.a.ifname in facts[ns].links:
            continue
        a, b = link.a, link.b
        ops.append(Op(("link", "add", a.ifname, "type", "veth", "peer", "name", b.ifname,
                       "netns", b.netns), ("link", "del", a.ifname), undo_netns=ns,
                      creates=(("link", ns, a.ifname), ("link", b.netns, b.ifname)),
                      gone_with=frozenset({("netns", ns), ("netns", b.netns)})))
    return ops


def _end_ops(lab: Lab, ns: str, state: NetnsState) -> list[Op]:
    """Mark, address and bring up every end inside ns."""
    ops = []
    for end in lab.ends_in(ns):
        have = state.links.get(end.ifname)
        within = frozenset({("link", ns, end.ifname)})
        if have is None or have.mark is None:
            ops.append(Op(("link", "set", end.ifname, "alias", _mark(lab, end.role))))
        if have is None and end.opts:  # MTU and MAC before the link comes up
            ops += ip_ops(end.ifname, end.opts)
        for address in end.addresses:
            if have is None or address not in have.addresses:
                # nodad: an IPv6 address is usable at once, not tentative for a second or two
                nodad = ("nodad",) if ":" in address else ()
                ops.append(Op(("addr", "add", address, "dev", end.ifname) + nodad,
                              ("addr", "del", address, "dev", end.ifname), undo_netns=ns,
                              gone_with=within))
        if have is None or not have.up:
            ops.append(Op(("link", "set", end.ifname, "up"),
                          ("link", "set", end.ifname, "down"), undo_netns=ns, gone_with=within))
    return ops


def _route_ops(lab: Lab, ns: str, state: NetnsState) -> list[Op]:
    ops = []
    have = {(r.get("dst"), r.get("gateway")) for r in state.routes}
    for route in (r for r in lab.routes if r.netns == ns):
        if (route.dest, route.via) in have:
            continue
        words = ("route", "add", route.dest, "via", route.via, "dev", route.dev)
        ops.append(Op(words, ("route", "del", *words[2:]), undo_netns=ns,
                      gone_with=frozenset({("link", ns, route.dev)})))
    return ops


def check_conflicts(lab: Lab, facts: dict[str, NetnsState], root: Optional[NetnsState]) -> None:
    """Refuse, before any change, what clashes with objects the kernel already holds."""
    check_mtu(lab)
    for ns, state in facts.items():
        others = state.labs() - {lab.name}
        if others:
            raise ConflictError(f"namespace {ns} belongs to lab {sorted(others)[0]}",
                                f"remove it first: vethwrap destroy {ns}")
        wanted = {end.ifname for end in lab.ends_in(ns)} | {b.name for b in lab.bridges
                                                            if b.netns == ns}
        for link in state.marked():
            if link.ifname not in wanted:
                raise ConflictError(
                    f"namespace {ns} is already wired differently (it has {link.ifname} "
                    f"of lab {lab.name})", f"remove it first: vethwrap destroy {ns}")
        for end in lab.ends_in(ns):
            _check_end(end, state)
    if root is not None:
        for end in lab.ends_in(None):
            _check_end(end, root)


def _check_end(end: End, state: NetnsState) -> None:
    where = end.netns or "the root namespace"
    have = state.links.get(end.ifname)
    if have is not None and have.mark is None:
        raise ConflictError(f"interface {end.ifname} already exists in {where} and is not "
                            "vethwrap's", "rename or remove it, or choose other namespace names")
    for address in end.addresses:
        owner = state.address_owner(address)
        if owner and owner != end.ifname:
            raise ConflictError(f"address {address} is already on {owner} in {where}",
                                "choose another --subnet")


def check_mtu(lab: Lab) -> None:
    """Refuse a link whose two ends would have different MTUs: large frames would vanish."""
    for link in lab.links:
        mtus = [end.opts.mtu if end.opts else None for end in (link.a, link.b)]
        if mtus[0] != mtus[1]:
            raise UsageError(f"link {link.a.ifname}-{link.b.ifname} would have MTU "
                             f"{mtus[0] or 'default'} at one end and {mtus[1] or 'default'} "
                             "at the other", "give both ends the same MTU")
