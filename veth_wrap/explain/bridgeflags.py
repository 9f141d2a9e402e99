"""What a bridge does with a frame, decided from its ports' flags and its forwarding database.

A frame enters by one port and leaves by another: a locked port drops frames from a source it
has no entry for; two isolated ports never talk; the frame to a known MAC goes to the port the
fdb names; one to an unknown MAC is flooded only to ports with `flood` on, and the ARP
broadcast (IPv6: the neighbour solicitation's multicast) only to those with `bcast_flood`
(`mcast_flood`) on. Read from `ip -d link` (port flags) and, when needed, `bridge -j fdb`.
"""

from __future__ import annotations

from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.findings import PathWalk as Walk
from veth_wrap.explain.nets import Ns, Reach, label
from veth_wrap.kernel import reader


def _port_data(walk: Walk, ns: Ns, dev: str) -> dict:
    link = walk.nets.link(ns, dev)
    info = link.raw.get("linkinfo", {}) if link else {}
    return info.get("info_slave_data", {}) if info.get("info_slave_kind") == "bridge" else {}


def _ports(walk: Walk, reach: Reach) -> tuple[Ns, str, str, str] | None:
    """(namespace, bridge, the port the frames enter by, the port they leave by)."""
    path = list(reach.path)
    for i, (ns, dev) in enumerate(path):
        link = walk.nets.link(ns, dev)
        if link is None or link.kind != "bridge" or i == 0 or i + 1 >= len(path):
            continue
        ins, out = path[i - 1], path[i + 1]
        if ins[0] == ns and out[0] == ns:
            return ns, dev, ins[1], out[1]
    return None


def _flag(walk: Walk, ns: Ns, port: str, bridge: str, flag: str, want: str,
          summary: str, evidence: list[str]) -> Finding:
    found = Finding(Cause.BRIDGE_PORT_FLAG, summary, evidence, namespace=ns, passable=True,
                    direction="reply" if walk.reply else "forward", decided_by="bridge")
    argv = ["bridge", *(["-n", ns] if ns else []), "link", "set", "dev", port]
    other = "off" if want == "on" else "on"
    return found.fix([*argv, flag, want], [*argv, flag, other])


def bridge_decision(walk: Walk, reach: Reach) -> list[Finding]:
    """The flags and fdb entries that keep the bridge from carrying the frames."""
    ports = _ports(walk, reach)
    if ports is None:
        return []
    ns, bridge, ins, out = ports
    into, onto = _port_data(walk, ns, ins), _port_data(walk, ns, out)
    if not into or not onto:
        return []
    where = f"bridge {bridge} in {label(ns)}"
    seen = f"ip -d link in {label(ns)}: " + "; ".join(
        f"{p}: " + ", ".join(f"{k} {'on' if d.get(k) else 'off'}" for k in
                              ("learning", "flood", "bcast_flood", "mcast_flood", "isolated",
                               "locked"))
        for p, d in ((ins, into), (out, onto)))
    walk.note(seen)
    if into.get("locked"):
        return [_flag(walk, ns, ins, bridge, "locked", "off",
                      f"port {ins} of {where} is locked: it drops frames from sources it has "
                      "no forwarding entry for", [seen])]
    if into.get("isolated") and onto.get("isolated"):
        return [_flag(walk, ns, out, bridge, "isolated", "off",
                      f"ports {ins} and {out} of {where} are both isolated: the bridge "
                      "forwards nothing between them", [seen])]
    return _vlans(walk, ns, bridge, ins, out) or _flooding(walk, reach, ns, bridge, out, onto,
                                                           seen)


def _vlans(walk: Walk, ns: Ns, bridge: str, ins: str, out: str) -> list[Finding]:
    """With VLAN filtering on, an untagged frame takes the PVID of the port it enters by, and
    leaves only by a port in that VLAN, untagged only where the VLAN is egress untagged."""
    link = walk.nets.link(ns, bridge)
    data = link.raw.get("linkinfo", {}).get("info_data", {}) if link else {}
    if not data.get("vlan_filtering") or ns is None:
        return []
    table = {e.get("ifname"): {v.get("vlan"): v.get("flags", []) for v in e.get("vlans", [])}
             for e in reader.one(ns, reader.VLANS, walk.nets.counted) or []}
    into, onto = table.get(ins, {}), table.get(out, {})
    seen = (f"bridge -j vlan in {label(ns)}: {ins} " + _vids(into) + f"; {out} " + _vids(onto))
    walk.note(seen)
    base = ["bridge", "-n", ns, "vlan"]
    pvid = next((vid for vid, flags in into.items() if "PVID" in flags), None)
    if pvid is None:
        want = str(data.get("vlan_default_pvid") or 1)
        found = _vlan_finding(walk, ns, f"port {ins} of bridge {bridge} in {label(ns)} has no "
                              "PVID: it drops the untagged frames that enter by it", seen)
        return [found.fix([*base, "add", "dev", ins, "vid", want, "pvid", "untagged"],
                          [*base, "del", "dev", ins, "vid", want])]
    flags = onto.get(pvid)
    if flags is not None and "Egress Untagged" in flags:
        return []
    if flags is None:
        found = _vlan_finding(walk, ns, f"port {out} of bridge {bridge} in {label(ns)} is not "
                              f"in VLAN {pvid}, the VLAN of the frames entering by {ins}", seen)
        return [found.fix([*base, "add", "dev", out, "vid", str(pvid), "untagged"],
                          [*base, "del", "dev", out, "vid", str(pvid)])]
    found = _vlan_finding(walk, ns, f"port {out} of bridge {bridge} in {label(ns)} sends VLAN "
                          f"{pvid} tagged: {walk.target}'s end takes only untagged frames", seen)
    tagged = [*base, "add", "dev", out, "vid", str(pvid)]
    return [found.fix([*tagged, "untagged", *(["pvid"] if "PVID" in flags else [])],
                      [*tagged, *(["pvid"] if "PVID" in flags else [])])]


def _vids(vlans: dict) -> str:
    return ", ".join(f"{vid} ({' '.join(flags)})" if flags else str(vid)
                     for vid, flags in vlans.items()) or "no VLAN"


def _vlan_finding(walk: Walk, ns: Ns, summary: str, seen: str) -> Finding:
    return Finding(Cause.BRIDGE_PORT_VLAN, summary, [seen], namespace=ns, passable=True,
                   direction="reply" if walk.reply else "forward", decided_by="bridge")


def _flooding(walk: Walk, reach: Reach, ns: Ns, bridge: str, out: str, onto: dict,
              seen: str) -> list[Finding]:
    """Address resolution and unicast to a MAC the bridge has not learned go by flooding."""
    resolve = "bcast_flood" if walk.family == 4 else "mcast_flood"
    where = f"bridge {bridge} in {label(ns)}"
    found = []
    if not onto.get(resolve, True):
        what = "ARP broadcasts" if walk.family == 4 else "neighbour solicitations (multicast)"
        found.append(_flag(walk, ns, out, bridge, resolve, "on",
                           f"port {out} of {where} has {resolve} off: the {what} that "
                           f"resolve {walk.target} never leave by it", [seen]))
    if onto.get("flood", True):
        return found
    far = walk.nets.link(reach.ns, reach.ifname)
    mac = (far.mac if far else "").lower()
    # the root namespace's is not read
    fdb = (reader.one(ns, reader.bridge_fdb(bridge), walk.nets.counted) or []) if ns else []
    entry = next((e for e in fdb if e.get("mac", "").lower() == mac and "self" not in
                  e.get("flags", [])), None)
    if entry is not None and entry.get("ifname") == out:
        return found
    evidence = [seen, f"bridge -j fdb in {label(ns)}: "
                + (f"{mac} is on {entry.get('ifname')}" if entry else f"no entry for {mac}")
                + f" ({reach.ifname} in {label(reach.ns)}), so its frames are flooded, and "
                  f"{out} floods nothing"]
    return found + [_flag(walk, ns, out, bridge, "flood", "on",
                          f"port {out} of {where} has flood off and the bridge has not "
                          f"learned {reach.ifname}'s MAC: unicast frames never leave by it",
                          evidence)]
