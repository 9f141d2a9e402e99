"""Compile a host's VXLAN ends into steps: made in the root namespace, moved into the lab's.

The device is created by the root namespace's `ip` with `netns NS`, so the kernel opens its UDP
socket in the root namespace (on the underlay) while the device itself sits in the lab
namespace. `nolearning`: frames go only to the underlay addresses the file names, never to a
sender the device merely heard from. A stretched bridge's device has no single remote: an
all-zeros forwarding entry per other host sends floods to each of them (head-end replication).
"""

from __future__ import annotations

from typing import Optional

from veth_wrap.model.facts import LinkState, NetnsState
from veth_wrap.model.hostshare import Tunnel, tunnels_of
from veth_wrap.model.names import Mark
from veth_wrap.model.topology import Lab
from veth_wrap.steps import Kind, Op, Plan

FLOOD = "00:00:00:00:00:00"


def tunnel_names(lab: Lab, ns: Optional[str]) -> set[str]:
    """The VXLAN ends the share wants in a namespace (for the conflict check)."""
    return {t.end.ifname for t in tunnels_of(lab) if t.end.netns == ns}


def add_tunnels(plan: Plan, lab: Lab, facts: dict[str, NetnsState]) -> None:
    """The steps that make, mark, address and raise the share's VXLAN ends that are missing."""
    tunnels = tunnels_of(lab)
    if not tunnels:
        return
    have = {t: _have(t, facts) for t in tunnels}
    # only vethwrap's own devices are replaced; check_conflicts refused anything else
    stale = [t for t in tunnels if have[t] is not None and have[t].mark is not None
             and not matches(t, have[t])]
    for ns in dict.fromkeys(t.end.netns for t in stale):
        plan.add((Op(Kind.DEL_LINK, ("link", "del", t.end.ifname), target=t.end.ifname)
                  for t in stale if t.end.netns == ns),
                 netns=ns, comment=f"VXLAN ends in {ns} that the file now sets differently")
    fresh = [t for t in tunnels if have[t] is None or t in stale]
    plan.add((create_op(t) for t in fresh),
             comment="VXLAN ends, made in the root namespace (their socket stays on the underlay)")
    for ns in dict.fromkeys(t.end.netns for t in tunnels):
        mine = [t for t in tunnels if t.end.netns == ns]
        plan.add((op for t in mine for op in _inside_ops(lab, t, None if t in fresh else have[t])),
                 netns=ns, comment=f"VXLAN ends in {ns}")
        plan.add((op for t in fresh if t.end.netns == ns for op in flood_ops(t)), netns=ns,
                 program="bridge", comment=f"head-end replication in {ns}")
        plan.add((op for t in fresh if t.end.netns == ns for op in _tc_ops(t)), netns=ns,
                 program="tc", comment=f"impairments of VXLAN ends in {ns}")


def _have(tunnel: Tunnel, facts: dict[str, NetnsState]) -> Optional[LinkState]:
    st = facts.get(tunnel.end.netns)
    return st.links.get(tunnel.end.ifname) if st else None


def matches(tunnel: Tunnel, link: LinkState) -> bool:
    """True when the kernel's device is the VXLAN the file asks for."""
    info = link.raw.get("linkinfo", {})
    data = info.get("info_data", {})
    remote = tunnel.remotes[0] if len(tunnel.remotes) == 1 and not tunnel.end.master else None
    return (info.get("info_kind") == "vxlan" and data.get("id") == tunnel.vni
            and data.get("port") == tunnel.port and data.get("local") == tunnel.local
            and data.get("remote") == remote and link.mtu == tunnel.mtu)


def create_op(tunnel: Tunnel) -> Op:
    """`ip link add` of the device straight into its namespace, from the root namespace."""
    end = tunnel.end
    words = ("link", "add", end.ifname, "netns", end.netns, "mtu", str(tunnel.mtu),
             "type", "vxlan", "id", str(tunnel.vni), "local", tunnel.local)
    if len(tunnel.remotes) == 1 and not end.master:
        words += ("remote", tunnel.remotes[0])
    words += ("dstport", str(tunnel.port), "nolearning")
    if tunnel.dev:
        words += ("dev", tunnel.dev)
    return Op(Kind.ADD_VXLAN, words, ("link", "del", end.ifname), undo_netns=end.netns,
              creates=(("link", end.netns, end.ifname),),
              gone_with=frozenset({("netns", end.netns)}), target=end.ifname, netns=end.netns)


def _inside_ops(lab: Lab, tunnel: Tunnel, have: Optional[LinkState]) -> list[Op]:
    """Mark it (so show and destroy find it), address it, put it on its bridge, raise it."""
    end, ns = tunnel.end, tunnel.end.netns
    within = frozenset({("link", ns, end.ifname)})
    ops = []
    if have is None or have.mark is None:
        ops.append(Op(Kind.SET_LINK, ("link", "set", end.ifname, "alias",
                                      Mark(lab.name, end.role, lab.kind.value).text()),
                      target=end.ifname))
    for address in end.addresses:
        if have is None or address not in have.addresses:
            ops.append(Op(Kind.ADD_ADDRESS, ("addr", "add", address, "dev", end.ifname)
                          + (("nodad",) if ":" in address else ()),
                          ("addr", "del", address, "dev", end.ifname), undo_netns=ns,
                          gone_with=within, target=end.ifname))
    if end.master and (have is None or have.master != end.master):
        ops.append(Op(Kind.SET_LINK, ("link", "set", end.ifname, "master", end.master),
                      ("link", "set", end.ifname, "nomaster"), undo_netns=ns, gone_with=within,
                      target=end.ifname))
    if have is None or not have.up:
        ops.append(Op(Kind.SET_LINK, ("link", "set", end.ifname, "up"),
                      ("link", "set", end.ifname, "down"), undo_netns=ns, gone_with=within,
                      target=end.ifname))
    return ops


def flood_ops(tunnel: Tunnel) -> list[Op]:
    """A stretched bridge's all-zeros entries: every flood goes to each other host."""
    if not tunnel.end.master:
        return []
    ifname, ns = tunnel.end.ifname, tunnel.end.netns
    return [Op(Kind.ADD_FLOOD, ("fdb", "append", FLOOD, "dev", ifname, "dst", remote),
               ("fdb", "del", FLOOD, "dev", ifname, "dst", remote), undo_netns=ns,
               gone_with=frozenset({("link", ns, ifname)}), target=ifname)
            for remote in tunnel.remotes]


def _tc_ops(tunnel: Tunnel) -> list[Op]:
    opts = tunnel.end.opts
    if not opts or not opts.impaired:
        return []
    from veth_wrap.model.linkopts import tc_ops

    return tc_ops(tunnel.end.ifname, opts)
