"""A lab's bridge: the bridge itself and, for each member, its veth and port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.model.facts import NetnsState
from veth_wrap.model.names import Mark, Role
from veth_wrap.model.topology import End, Lab
from veth_wrap.steps import Kind, Op


def mark(lab: Lab, role: str) -> str:
    """The alias that marks an object of lab in a role."""
    return Mark(lab.name, role, lab.kind.value).text()


def end_ip_ops(end: End) -> list[Op]:
    """An end's MTU and MAC ops; tc (and netem's facts) load only for labs with link options."""
    if not end.opts:
        return []
    from veth_wrap.compile.tc import ip_ops

    return ip_ops(end.ifname, end.opts)


def sized(end: End) -> bool:
    """True when the end gets an MTU or MAC, which go on before it comes up."""
    return bool(end_ip_ops(end))


@dataclass
class Wiring:
    """A bridge's ops: those before the members, the ports' attachment after them."""

    made: list[Op] = field(default_factory=list)
    attach: list[Op] = field(default_factory=list)
    raised: dict[str, list[str]] = field(default_factory=dict)  # member -> its ends, up

    def join(self, other: Wiring) -> None:
        """Add another bridge's ops after these (ports and attachments stay per bridge)."""
        self.made += other.made
        for ns, ends in other.raised.items():
            self.raised.setdefault(ns, []).extend(ends)


def bridge_ops(lab: Lab, state: NetnsState, where: Optional[str],
               quiet: tuple[str, ...] = (), index: int = 0) -> Wiring:
    """The bridge and, for each member, a veth whose end is created in the member.

    With IPv6 (not quiet) the ends come up here, long before the ports join the bridge: an
    end coming up sends IPv6 multicast for seconds, which a bridge floods to every port, and
    1,000 ports make that a million frames that overflow the kernel's backlog: those ops are
    early (no schedule runs them later). Quiet ends send nothing, and come up inside their
    members, where `addrgenmode none` goes first.
    """
    bridge = lab.bridges[index].name
    wired = Wiring()
    if bridge not in state.links:
        # a snooping bridge joins the all-snoopers group and sends MLD reports of its own
        words = ("type", "bridge", "mcast_snooping", "0") if quiet else ("up", "type", "bridge")
        wired.made.append(Op(Kind.ADD_BRIDGE, ("link", "add", bridge) + words,
                             ("link", "del", bridge), undo_netns=where,
                             creates=(("link", where, bridge),),
                             gone_with=frozenset({("netns", where)} if where else set()),
                             target=bridge))
        wired.made.append(Op(Kind.SET_LINK, ("link", "set", bridge) + quiet
                             + ("alias", mark(lab, Role.BRIDGE)), target=bridge))
        if quiet:  # a bridge has carrier at once: in the same line, up would go first
            wired.made.append(Op(Kind.SET_LINK, ("link", "set", bridge, "up"), target=bridge))
    for link in lab.links:
        port, member = link.b, link.a
        if port.master != bridge or port.netns != where:  # lab files mix in p2p links
            continue
        have = state.links.get(port.ifname)
        if have is None:
            wired.made += _port_ops(lab, port, member, where, quiet)
            if not sized(member) and not quiet:  # else it comes up inside, set up first
                wired.raised.setdefault(member.netns, []).append(member.ifname)
        if have is None or have.master != bridge:
            wired.attach.append(Op(Kind.SET_LINK, ("link", "set", port.ifname, "master", bridge),
                                   ("link", "set", port.ifname, "nomaster"), undo_netns=where,
                                   gone_with=frozenset({("link", where, port.ifname)}),
                                   target=port.ifname))
    return wired


def _port_ops(lab: Lab, port: End, member: End, where: Optional[str],
              quiet: tuple[str, ...] = ()) -> list[Op]:
    """The veth made from the port's side with its member end created in place (and up).

    The member end is the one named first: a veth's peer cannot come up as it is made.
    """
    up = () if sized(member) or quiet else ("up",)
    return [Op(Kind.ADD_VETH, ("link", "add", member.ifname, "netns", member.netns) + up
               + ("type", "veth", "peer", "name", port.ifname),
               ("link", "del", port.ifname), undo_netns=where,
               creates=(("link", where, port.ifname), ("link", member.netns, member.ifname)),
               gone_with=frozenset({("netns", where), ("netns", member.netns)}),
               target=port.ifname, netns=member.netns, early=bool(up)),
            _raise_port(lab, port, quiet)]


def _raise_port(lab: Lab, port: End, quiet: tuple[str, ...]) -> Op:
    """Bring a port up, marked as the lab's (quiet first, if asked: else it talks IPv6 at
    once, and comes up long before it joins the bridge)."""
    return Op(Kind.SET_LINK, ("link", "set", port.ifname) + quiet
              + ("up", "alias", mark(lab, Role.PORT)), target=port.ifname, early=not quiet)
