"""Compile a Lab and the kernel's facts into the plan that builds what is missing."""

from __future__ import annotations

import dataclasses
from typing import Optional

from veth_wrap.compile import borrow, uplink, vxlan
from veth_wrap.compile.bridge import Wiring, bridge_ops, end_ip_ops, mark
from veth_wrap.errors import ConflictError, UsageError
from veth_wrap.model.facts import LinkState, NetnsState
from veth_wrap.model.hostshare import tunnel_ends
from veth_wrap.model.names import Borrowed, Role
from veth_wrap.model.topology import End, Lab
from veth_wrap.steps import Kind, Op, Plan


def create_plan(lab: Lab, facts: dict[str, NetnsState], root: Optional[NetnsState] = None,
                netem: bool = True, host_ipv6: bool = True) -> Plan:
    """The steps that turn what the kernel holds into the lab; empty when it is already there.

    netem says whether the kernel has sch_netem (kernel/caps); without it, loss takes the
    BPF filter and delay is refused. host_ipv6 says whether the kernel has IPv6 at all: only
    then can the ends of a lab without IPv6 be told to keep quiet (see quiet_words).
    """
    check_conflicts(lab, facts, root)
    lab_quiet = quiet_words(lab, host_ipv6)
    plan = Plan()
    missing = [ns for ns in lab.namespaces() if ns not in facts]
    wirings = [bridge_ops(lab, _state_of(bridge.netns, facts, root), bridge.netns, lab_quiet,
                          i) for i, bridge in enumerate(lab.bridges)]
    wired = Wiring()
    for wiring in wirings:
        wired.join(wiring)
    made_in_root = _made_in(lab, wirings, None)  # a host bridge, its members' ends
    plan.add([op for ns in missing for op in _netns_add(lab, ns)] + made_in_root,
             comment="namespaces" if missing else "root namespace")
    _bridge_steps(plan, lab, facts, wirings)
    # new namespaces first: whichever end's namespace comes first makes a link, so a new
    # one's links to those already there are made from its side
    order = [ns for ns in lab.members if ns not in facts] + [ns for ns in lab.members
                                                             if ns in facts]
    rank = {ns: i for i, ns in enumerate(order)}
    inside = {ns: _member_ops(lab, ns, facts, wired.raised.get(ns), lab_quiet, rank)
              for ns in order}
    for ns, ops in inside.items():
        plan.add(ops, netns=ns, comment=f"namespace {ns}")
    plan.add(_forwarding_ops(lab, facts), comment="root namespace")  # routers, once wired
    for bridge, wiring in zip(lab.bridges, wirings):  # ports join once members are up
        plan.add(wiring.attach, netns=bridge.netns, comment=f"ports onto {bridge.name}")
    vxlan.add_tunnels(plan, lab, facts)  # a lab over several hosts: this host's VXLAN ends
    _option_steps(plan, lab, facts, root, netem)
    uplink.add_gateways(plan, lab, facts)  # last: a namespace's routes are in place first
    busy = {step.netns for step in plan.steps} | {ns for ns, ops in inside.items() if ops}
    for ns in lab.namespaces():
        if ns in facts and ns not in busy:
            plan.notes.append(f"{ns}: already as asked")
    return plan


def _bridge_steps(plan: Plan, lab: Lab, facts: dict[str, NetnsState],
                  wirings: list[Wiring]) -> None:
    """The bridges' own steps: those in the hub (with its lo), then those in namespaces of
    the file (the root's go with the root ops)."""
    if lab.hub:
        hub_state = facts.get(lab.hub, NetnsState(lab.hub))
        hub_ops = _lo_ops(lab, lab.hub, hub_state, Role.HUB) if lab.hub in facts else []
        plan.add(hub_ops + _made_in(lab, wirings, lab.hub), netns=lab.hub,
                 comment=f"bridge in {lab.hub}")
    for ns in dict.fromkeys(b.netns for b in lab.bridges if b.netns not in (None, lab.hub)):
        plan.add(_made_in(lab, wirings, ns), netns=ns, comment=f"bridge in {ns}")


def _state_of(ns: Optional[str], facts: dict[str, NetnsState],
              root: Optional[NetnsState]) -> NetnsState:
    """What the kernel holds in a namespace (None: the root) before the plan."""
    if ns is None:
        return root or NetnsState(None)
    return facts.get(ns, NetnsState(ns))


def _made_in(lab: Lab, wirings: list[Wiring], ns: Optional[str]) -> list[Op]:
    """The ops of every bridge that lives in ns."""
    return [op for bridge, wiring in zip(lab.bridges, wirings) if bridge.netns == ns
            for op in wiring.made]


def quiet_words(lab: Lab, host_ipv6: bool = True) -> tuple[str, ...]:
    """`addrgenmode none` for the new interfaces of a lab without IPv6, else nothing.

    An interface coming up makes an IPv6 link-local address and sends duplicate address
    detection, router solicitations and MLD reports; a bridge floods each to every port, and
    a few hundred ports fill the kernel's per-CPU backlog (softnet drops). Without a
    link-local address nothing is sent. It is set in the line that brings the link up (the
    kernel refuses it in `link add`), so it costs no command more.
    """
    return ("addrgenmode", "none") if host_ipv6 and 6 not in lab.versions() else ()


def _member_ops(lab: Lab, ns: str, facts: dict[str, NetnsState],
                raised: Optional[list[str]] = None, quiet: tuple[str, ...] = (),
                rank: Optional[dict[str, int]] = None) -> list[Op]:
    """What one member needs done inside it.

    A namespace made by this plan has lo done already, and `raised` names the ends that an
    earlier step created here and brought up. rank: each member's place in the plan.
    """
    state = facts.get(ns, NetnsState(ns))
    ops = _veth_ops(lab, ns, facts, rank or {})
    if ns in facts:
        ops += _lo_ops(lab, ns, state, Role.NETNS)
    if raised:
        ups = {name: LinkState(name, 0, "veth", True, "UP", ()) for name in raised}
        state = dataclasses.replace(state, links={**state.links, **ups})
    return ops + _end_ops(lab, ns, state, quiet) + _route_ops(lab, ns, state)


def _netns_add(lab: Lab, ns: str) -> list[Op]:
    """Add a namespace and mark it: lo up with the lab's alias, so that a crash right after
    leaves it findable (the namespace is deleted on rollback, so the mark has no undo)."""
    role = Role.HUB if ns == lab.hub else Role.NETNS
    return [Op(Kind.ADD_NETNS, ("netns", "add", ns), ("netns", "del", ns),
               creates=(("netns", ns),), target=ns, netns=ns),
            Op(Kind.MARK_NETNS, ("link", "set", "lo", "up", "alias", mark(lab, role)),
               target=ns, netns=ns)]


def _forwarding_ops(lab: Lab, facts: dict[str, NetnsState]) -> list[Op]:
    ops = []
    for ns in lab.forwarding:
        if ns in facts and facts[ns].forwarding:
            continue
        ops.append(Op(Kind.SET_SYSCTL, ("netns", "exec", ns, "sysctl", "-qw",
                                         "net.ipv4.ip_forward=1"),
                      ("netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0"),
                      gone_with=frozenset({("netns", ns)}), target="net.ipv4.ip_forward",
                      netns=ns))
        if 6 in lab.versions():  # the namespace's own sysctl: the host's is left alone
            ops.append(Op(Kind.SET_SYSCTL, ("netns", "exec", ns, "sysctl", "-qw",
                                             "net.ipv6.conf.all.forwarding=1"),
                          ("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"),
                          gone_with=frozenset({("netns", ns)}),
                          target="net.ipv6.conf.all.forwarding", netns=ns))
    return ops


def _option_steps(plan: Plan, lab: Lab, facts: dict[str, NetnsState],
                  root: Optional[NetnsState], netem: bool) -> None:
    """MTU of bridge ports and `tc` impairments, on ends this plan creates (live: `link set`)."""
    for ns in (None,) + lab.namespaces():
        state = (root or NetnsState(None)) if ns is None else facts.get(ns, NetnsState(ns))
        new = [end for end in lab.ends_in(ns) if end.opts and end.ifname not in state.links]
        ports = [op for end in new if end.master for op in end_ip_ops(end)]
        plan.add(ports, netns=ns, comment=f"link options in {ns or 'the root namespace'}")
        plan.add([op for end in new for op in _tc_ops(end, netem)], netns=ns,
                 program="tc", comment=f"impairments in {ns or 'the root namespace'}")


def _tc_ops(end: End, netem: bool) -> list[Op]:
    """An end's `tc` impairment ops (none without link options)."""
    if not end.opts:
        return []
    from veth_wrap.compile.tc import tc_ops

    return tc_ops(end.ifname, end.opts, netem)


def _lo_ops(lab: Lab, ns: str, state: NetnsState, role: str) -> list[Op]:
    """Bring lo up; in a namespace vethwrap creates, mark it as the lab's; in one that was
    there before, record in lo's mark what this changes (compile/borrow.py)."""
    ops = []
    lo = state.links.get("lo")
    changes = borrow.lo_changes(state)
    if Borrowed.LO_ADDR in changes:
        # lo up adds 127.0.0.1, which lo down keeps: added first, rollback deletes it last
        ops.append(Op(Kind.SET_LO, ("addr", "add", borrow.LOOPBACK, "dev", "lo"),
                      ("addr", "del", borrow.LOOPBACK, "dev", "lo"), undo_netns=ns,
                      gone_with=frozenset({("netns", ns)}), target="lo"))
    if lo is None or not lo.up:
        ops.append(Op(Kind.SET_LO, ("link", "set", "lo", "up"), ("link", "set", "lo", "down"),
                      undo_netns=ns, gone_with=frozenset({("netns", ns)}), target="lo"))
    made = state.lo_mark and state.lo_mark.role in (Role.NETNS, Role.HUB)
    if made and state.lo_mark.lab == lab.name and state.lo_mark.role != role:
        ops.append(Op(Kind.SET_LO, ("link", "set", "lo", "alias", mark(lab, role)), target="lo"))
    return ops + ([] if made else borrow.mark_ops(lab, ns, state, changes))


def _veth_ops(lab: Lab, ns: str, facts: dict[str, NetnsState], rank: dict[str, int]) -> list[Op]:
    """Point-to-point links made from ns: those to namespaces whose steps come later.

    Whichever end's namespace comes first in the plan makes the link, so that a ring of
    links (r1-r2, ..., r4-r1) has every link in place before a step brings an end up.
    """
    mine, later = rank.get(ns, -1), len(rank)
    pairs = [(link.a, link.b) for link in lab.links_from(ns)
             if rank.get(link.b.netns, later) > mine]
    pairs += [(link.b, link.a) for link in lab.links_to(ns)
              if link.a.netns is not None and rank.get(link.a.netns, later) > mine]
    ops = []
    for here, there in pairs:
        if there.netns is None or here.role in (Role.MEMBER, Role.PORT):  # bridge_ops
            continue
        if ns in facts and here.ifname in facts[ns].links:
            continue
        if there.netns in facts and there.ifname in facts[there.netns].links:
            continue
        ops.append(Op(Kind.ADD_VETH, ("link", "add", here.ifname, "type", "veth", "peer", "name",
                                       there.ifname, "netns", there.netns),
                      ("link", "del", here.ifname), undo_netns=ns,
                      creates=(("link", ns, here.ifname), ("link", there.netns, there.ifname)),
                      gone_with=frozenset({("netns", ns), ("netns", there.netns)}),
                      target=here.ifname, netns=there.netns))
    return ops


def _end_ops(lab: Lab, ns: str, state: NetnsState, quiet: tuple[str, ...] = ()) -> list[Op]:
    """Mark, address and bring up every end inside ns (a new one quiet first, if asked)."""
    ops = []
    for end in lab.ends_in(ns):
        if end.master:  # a port of a bridge that lives here: bridge_ops made it
            continue
        have = state.links.get(end.ifname)
        within = frozenset({("link", ns, end.ifname)})
        up = ("link", "set", end.ifname, "up")
        alias = ("alias", mark(lab, end.role))
        early = end_ip_ops(end) if have is None else []
        fresh = quiet if have is None else ()
        if have is None and not early:  # one command marks it and brings it up: one fork less
            ops.append(Op(Kind.SET_LINK, up[:3] + fresh + up[3:] + alias, up[:3] + ("down",),
                          undo_netns=ns, gone_with=within, target=end.ifname))
            ops += _address_ops(end, have, ns, within)
            continue
        if have is None or have.mark is None:
            ops.append(Op(Kind.SET_LINK, ("link", "set", end.ifname) + fresh + alias,
                          target=end.ifname))
        ops += early  # MTU and MAC before the link comes up
        ops += _address_ops(end, have, ns, within)
        if have is None or not have.up:
            ops.append(Op(Kind.SET_LINK, up, up[:3] + ("down",), undo_netns=ns,
                          gone_with=within, target=end.ifname))
    return ops


def _address_ops(end: End, have: Optional[LinkState], ns: str, within: frozenset) -> list[Op]:
    ops = []
    for address in end.addresses:
        if have is None or address not in have.addresses:
            # nodad: an IPv6 address is usable at once, not tentative for a second or two
            nodad = ("nodad",) if ":" in address else ()
            ops.append(Op(Kind.ADD_ADDRESS, ("addr", "add", address, "dev", end.ifname) + nodad,
                          ("addr", "del", address, "dev", end.ifname), undo_netns=ns,
                          gone_with=within, target=end.ifname))
    return ops


def _route_ops(lab: Lab, ns: str, state: NetnsState) -> list[Op]:
    ops = []
    have = {(r.get("dst"), r.get("gateway")) for r in state.routes}
    for route in (r for r in lab.routes if r.netns == ns):
        if (route.dest, route.via) in have:
            continue
        words = ("route", "add", route.dest, "via", route.via, "dev", route.dev)
        ops.append(Op(Kind.ADD_ROUTE, words, ("route", "del", *words[2:]), undo_netns=ns,
                      gone_with=frozenset({("link", ns, route.dev)}), target=route.dest))
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
        wanted |= vxlan.tunnel_names(lab, ns) | uplink.uplink_names(lab, ns)
        for link in state.marked():
            if link.ifname not in wanted:
                raise ConflictError(
                    f"namespace {ns} is already wired differently (it has {link.ifname} "
                    f"of lab {lab.name})", f"remove it first: vethwrap destroy {ns}")
        for end in lab.ends_in(ns) + tunnel_ends(lab, ns):
            _check_end(end, state)
    if root is not None:
        for end in lab.ends_in(None):
            _check_end(end, root)
    for bridge in lab.bridges:
        _check_bridge(lab, bridge, root if bridge.netns is None else facts.get(bridge.netns))


def _check_bridge(lab: Lab, bridge, state: Optional[NetnsState]) -> None:
    """A bridge's name taken by another device (the host's eth0, docker0, a bridge of
    another lab): ports would be attached to it, so refuse."""
    have = state.links.get(bridge.name) if state else None
    if have is None or (have.kind == "bridge" and have.mark and have.mark.lab == lab.name):
        return
    where = bridge.netns or "the root namespace"
    raise ConflictError(f"interface {bridge.name} already exists in {where} and is not the "
                        f"bridge of lab {lab.name}", "give the bridge another name (name: under "
                        "bridges), or remove that interface")


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
