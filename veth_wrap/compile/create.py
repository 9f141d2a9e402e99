"""Compile a Lab and the kernel's facts into the plan that builds what is missing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.errors import ConflictError, UsageError
from veth_wrap.model.facts import LinkState, NetnsState
from veth_wrap.model.names import Mark, Role
from veth_wrap.model.topology import End, Lab
from veth_wrap.steps import PARALLEL_FROM, Op, Plan, spread


def create_plan(lab: Lab, facts: dict[str, NetnsState], root: Optional[NetnsState] = None,
                netem: bool = True) -> Plan:
    """The steps that turn what the kernel holds into the lab; empty when it is already there.

    netem says whether the kernel has sch_netem (kernel/caps); without it, loss takes the
    BPF filter and delay is refused.
    """
    check_conflicts(lab, facts, root)
    plan = Plan()
    missing = [ns for ns in lab.namespaces() if ns not in facts]
    after = _forwarding_ops(lab, facts)
    wired = _Wiring()
    if lab.bridges and lab.bridges[0].netns is None:
        wired = _bridge_ops(lab, root or NetnsState(None), None)
        after += wired.made
    _add_namespaces(plan, lab, missing, after)
    if lab.hub:
        hub_state = facts.get(lab.hub, NetnsState(lab.hub))
        hub_ops = _lo_ops(lab, lab.hub, hub_state, Role.HUB) if lab.hub in facts else []
        wired = _bridge_ops(lab, hub_state, lab.hub)
        plan.add(hub_ops + wired.made, netns=lab.hub, comment=f"bridge in {lab.hub}")
    inside = {ns: _member_ops(lab, ns, facts, wired.raised.get(ns)) for ns in lab.members}
    if _bridge_only(lab):
        _add_folded(plan, inside)
    else:
        for ns, ops in inside.items():
            plan.add(ops, netns=ns, comment=f"namespace {ns}")
    if wired.attach:
        bridge = lab.bridges[0]
        plan.add(wired.attach, netns=bridge.netns, comment=f"ports onto {bridge.name}")
    _option_steps(plan, lab, facts, root, netem)
    busy = {step.netns for step in plan.steps} | {ns for ns, ops in inside.items() if ops}
    for ns in lab.namespaces():
        if ns in facts and ns not in busy:
            plan.notes.append(f"{ns}: already as asked")
    return plan


def _add_namespaces(plan: Plan, lab: Lab, missing: list[str], after: list[Op]) -> None:
    """The missing namespaces, then the root ops that need them all.

    Marking a namespace forks an `ip` inside it, so many namespaces go as several batches
    at once (runner.BATCHES_AT_ONCE). The first goes alone before them, so that only one
    `ip` turns /run/netns into a mount point on a freshly booted host.
    """
    made = [_netns_add(lab, ns) for ns in missing]
    if len(made) < PARALLEL_FROM:
        plan.add([op for ops in made for op in ops] + after,
                 comment="namespaces" if missing else "root namespace")
        return
    plan.add(made[0], comment="namespaces")
    for part in spread(made[1:]):
        plan.add([op for ops in part for op in ops], comment="namespaces", group="namespaces")
    plan.add(after, comment="root namespace")


def _member_ops(lab: Lab, ns: str, facts: dict[str, NetnsState],
                raised: Optional[str] = None) -> list[Op]:
    """What one member needs done inside it.

    A namespace made by this plan has lo done already, and `raised` names the end that an
    earlier step created here and brought up.
    """
    state = facts.get(ns, NetnsState(ns))
    ops = _veth_ops(lab, ns, facts)
    if ns in facts:
        ops += _lo_ops(lab, ns, state, Role.NETNS)
    if raised:
        up = LinkState(raised, 0, "veth", True, "UP", ())
        state = dataclasses.replace(state, links={**state.links, raised: up})
    return ops + _end_ops(lab, ns, state) + _route_ops(lab, ns, state)


def _add_folded(plan: Plan, inside: dict[str, list[Op]]) -> None:
    """Members' ops as `netns exec NS ip ...` lines of root batches, several run at once.

    Such a line forks a small `ip`; a step of its own per member would fork this Python
    process through `sh`, which costs several times more. The batches are independent:
    each member's end exists by now, and nothing else in it depends on another member.
    """
    members = [ns for ns, ops in inside.items() if ops]
    for part in spread(members) if len(members) >= PARALLEL_FROM else [members]:
        if part:
            plan.add((_inside(ns, op) for ns in part for op in inside[ns]), group="members",
                     comment=f"inside {part[0]}" + (f" to {part[-1]}" if len(part) > 1 else ""))


def _inside(ns: str, op: Op) -> Op:
    """An op of namespace ns as a root batch line; its undo still runs with `ip -n ns`."""
    return dataclasses.replace(op, args=("netns", "exec", ns, "ip") + op.args)


def _bridge_only(lab: Lab) -> bool:
    """True when member steps are independent: every link hangs off the bridge, made earlier."""
    return bool(lab.bridges) and all(link.b.master for link in lab.links)


def _mark(lab: Lab, role: str) -> str:
    return Mark(lab.name, role, lab.kind.value).text()


def _netns_add(lab: Lab, ns: str) -> list[Op]:
    """Add a namespace and mark it at once, so a crash right after leaves it findable.

    The same `ip` brings lo up: one fork inside the namespace instead of two.
    """
    role = Role.HUB if ns == lab.hub else Role.NETNS
    return [Op(("netns", "add", ns), ("netns", "del", ns), creates=(("netns", ns),)),
            Op(("netns", "exec", ns, "ip", "link", "set", "lo", "up", "alias", _mark(lab, role)))]


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
                  root: Optional[NetnsState], netem: bool) -> None:
    """MTU of bridge ports and `tc` impairments, on ends this plan creates (live: `link set`)."""
    for ns in (None,) + lab.namespaces():
        state = (root or NetnsState(None)) if ns is None else facts.get(ns, NetnsState(ns))
        new = [end for end in lab.ends_in(ns) if end.opts and end.ifname not in state.links]
        ports = [op for end in new if end.master for op in _ip_ops(end)]
        plan.add(ports, netns=ns, comment=f"link options in {ns or 'the root namespace'}")
        plan.add([op for end in new for op in _tc_ops(end, netem)], netns=ns,
                 program="tc", comment=f"impairments in {ns or 'the root namespace'}")


def _ip_ops(end: End) -> list[Op]:
    """An end's MTU and MAC ops; netem loads only for labs with link options."""
    if not end.opts:
        return []
    from veth_wrap.compile.tc import ip_ops

    return ip_ops(end.ifname, end.opts)


def _tc_ops(end: End, netem: bool) -> list[Op]:
    """An end's `tc` impairment ops (none without link options)."""
    if not end.opts:
        return []
    from veth_wrap.compile.tc import tc_ops

    return tc_ops(end.ifname, end.opts, netem)


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


@dataclass
class _Wiring:
    """A bridge's ops: those before the members, the ports' attachment after them."""

    made: list[Op] = field(default_factory=list)
    attach: list[Op] = field(default_factory=list)
    raised: dict[str, str] = field(default_factory=dict)  # member namespace -> its end, up


def _bridge_ops(lab: Lab, state: NetnsState, where: Optional[str]) -> _Wiring:
    """The bridge and, for each member, a veth whose end is created in the member and up.

    The ends come up here, long before the ports join the bridge: an end coming up sends
    IPv6 multicast for seconds, which a bridge floods to every port, and 1,000 ports make
    that a million frames that overflow the kernel's backlog.
    """
    bridge = lab.bridges[0].name
    wired = _Wiring()
    if bridge not in state.links:
        wired.made.append(Op(("link", "add", bridge, "up", "type", "bridge"),
                             ("link", "del", bridge), undo_netns=where,
                             creates=(("link", where, bridge),),
                             gone_with=frozenset({("netns", where)} if where else set())))
        wired.made.append(Op(("link", "set", bridge, "alias", _mark(lab, Role.BRIDGE))))
    for link in lab.links:
        port, member = link.b, link.a
        if port.master != bridge:  # lab files mix in p2p links
            continue
        have = state.links.get(port.ifname)
        if have is None:
            wired.made += _port_ops(lab, port, member, where)
            if not _sized(member):  # an MTU or MAC is set inside, before the end comes up
                wired.raised[member.netns] = member.ifname
        if have is None or have.master != bridge:
            wired.attach.append(Op(("link", "set", port.ifname, "master", bridge),
                                   ("link", "set", port.ifname, "nomaster"), undo_netns=where,
                                   gone_with=frozenset({("link", where, port.ifname)})))
    return wired


def _port_ops(lab: Lab, port: End, member: End, where: Optional[str]) -> list[Op]:
    """The veth made from the port's side with its member end created in place, and up.

    The member end is the one named first: a veth's peer cannot come up as it is made.
    """
    up = () if _sized(member) else ("up",)
    return [Op(("link", "add", member.ifname, "netns", member.netns) + up
               + ("type", "veth", "peer", "name", port.ifname),
               ("link", "del", port.ifname), undo_netns=where,
               creates=(("link", where, port.ifname), ("link", member.netns, member.ifname)),
               gone_with=frozenset({("netns", where), ("netns", member.netns)})),
            Op(("link", "set", port.ifname, "up", "alias", _mark(lab, Role.PORT)))]


def _sized(end: End) -> bool:
    """True when the end gets an MTU or MAC, which go on before it comes up."""
    return bool(_ip_ops(end))


def _veth_ops(lab: Lab, ns: str, facts: dict[str, NetnsState]) -> list[Op]:
    """Point-to-point links whose first end lives in ns, created with both ends in place."""
    ops = []
    for link in lab.links_from(ns):
        if link.b.netns is None or link.a.role == Role.MEMBER:
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
        up = ("link", "set", end.ifname, "up")
        mark = ("alias", _mark(lab, end.role))
        early = _ip_ops(end) if have is None else []
        if have is None and not early:  # one command marks it and brings it up: one fork less
            ops.append(Op(up + mark, up[:3] + ("down",), undo_netns=ns, gone_with=within))
            ops += _address_ops(end, have, ns, within)
            continue
        if have is None or have.mark is None:
            ops.append(Op(("link", "set", end.ifname) + mark))
        ops += early  # MTU and MAC before the link comes up
        ops += _address_ops(end, have, ns, within)
        if have is None or not have.up:
            ops.append(Op(up, up[:3] + ("down",), undo_netns=ns, gone_with=within))
    return ops


def _address_ops(end: End, have: Optional[LinkState], ns: str, within: frozenset) -> list[Op]:
    ops = []
    for address in end.addresses:
        if have is None or address not in have.addresses:
            # nodad: an IPv6 address is usable at once, not tentative for a second or two
            nodad = ("nodad",) if ":" in address else ()
            ops.append(Op(("addr", "add", address, "dev", end.ifname) + nodad,
                          ("addr", "del", address, "dev", end.ifname), undo_netns=ns,
                          gone_with=within))
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
