"""Namespaces that were there before create: what it changed in them, and putting it back.

create brings lo up (adding 127.0.0.1/8 when lo lacks it) and may set a namespace's own
forwarding sysctls. In a namespace vethwrap made, destroy deletes all that with it; in one it
borrowed, the changes are written into lo's mark (`vethwrap/LAB/borrowed=lo-up,.../KIND`),
so destroy learns from the kernel alone what to undo. lo carrying someone else's alias is left
as it is: then nothing is recorded, and destroy leaves lo and the sysctls as they are.
"""

from __future__ import annotations

from typing import Optional

from veth_wrap.model.facts import NetnsState
from veth_wrap.model.names import Borrowed, Mark, Role
from veth_wrap.model.topology import Lab
from veth_wrap.steps import Kind, Op

LOOPBACK = "127.0.0.1/8"
SYSCTLS = {Borrowed.IPV4_FORWARD: "net.ipv4.ip_forward",
           Borrowed.IPV6_FORWARD: "net.ipv6.conf.all.forwarding"}


def lo_changes(state: NetnsState) -> set[str]:
    """What bringing lo up changes in a namespace as read."""
    lo = state.links.get("lo")
    if lo is not None and lo.up:
        return set()
    missing = lo is not None and LOOPBACK not in lo.addresses
    return {Borrowed.LO_UP} | ({Borrowed.LO_ADDR} if missing else set())


def mark_ops(lab: Lab, ns: str, state: NetnsState, changes: set[str]) -> list[Op]:
    """The op that records changes (and forwarding that create sets) in lo's mark."""
    if ns in lab.forwarding and not state.forwarding:
        changes = changes | {Borrowed.IPV4_FORWARD} | (
            {Borrowed.IPV6_FORWARD} if 6 in lab.versions() else set())
    lo = state.links.get("lo")
    have = lo.mark if lo else None
    if lo is None or (have is None and lo.raw.get("ifalias")):
        return []  # someone else's alias on lo stays
    if have is not None and (have.lab != lab.name or not have.role.startswith(Role.BORROWED)):
        return []  # made by vethwrap (deleted whole), or borrowed by another lab first
    old = Borrowed.changes(have.role) if have else frozenset()
    if not set(changes) - old:
        return []
    text = Mark(lab.name, Borrowed.role(old | changes), lab.kind.value).text()
    return [Op(Kind.SET_LO, ("link", "set", "lo", "alias", text),
               ("link", "set", "lo", "alias", have.text() if have else ""), undo_netns=ns,
               gone_with=frozenset({("netns", ns)}), target="lo")]


def restore_ops(ns: str, state: NetnsState) -> tuple[list[Op], list[Op]]:
    """(ops inside ns, ops from the root namespace) that undo what lo's mark records."""
    lo = state.links.get("lo")
    mark: Optional[Mark] = lo.mark if lo else None
    if mark is None or not mark.role.startswith(Role.BORROWED):
        return [], []
    changes = Borrowed.changes(mark.role)
    inside = [Op(Kind.SET_LO, ("link", "set", "lo", "down"), target="lo")
              ] if Borrowed.LO_UP in changes else []
    if Borrowed.LO_ADDR in changes and LOOPBACK in lo.addresses:
        inside.append(Op(Kind.SET_LO, ("addr", "del", LOOPBACK, "dev", "lo"), target="lo"))
    inside.append(Op(Kind.SET_LO, ("link", "set", "lo", "alias", ""), target="lo"))
    outside = [Op(Kind.SET_SYSCTL, ("netns", "exec", ns, "sysctl", "-qw", f"{key}=0"),
                  target=key, netns=ns)
               for change, key in SYSCTLS.items() if change in changes]
    return inside, outside
