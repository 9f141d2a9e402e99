"""One test ping with everything counted around it: where the packets stop, and what ate them.

Before and after the ping, one process reads each namespace on the path: its links' counters
(`ip -s -j link`) and its qdiscs' counters (`tc -s -j qdisc`); the kernel's drop reasons
(`skb:kfree_skb`, kernel/droptrace) are watched while it runs. The deltas are evidence on
their own (sent by one end, received by the other, answered or not); a qdisc whose drops rose
is a cause (`tc-drop`), with the filters on its hook named and a fix that removes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.nets import Nets, Ns, label
from veth_wrap.kernel import reader
from veth_wrap.model import lossfilter as lossbpf

ECHOES = 2  # echo requests in a test ping
HOOKS = {"ffff:fff1": "ingress", "ffff:fff2": "egress"}  # clsact's minor parents, by kind


@dataclass
class Snapshot:
    """Counters of one moment: per (namespace, device) link stats, and the qdiscs."""

    links: dict[tuple[Ns, str], dict] = field(default_factory=dict)
    qdiscs: dict[tuple[Ns, str, str], dict] = field(default_factory=dict)  # (ns, dev, handle)


def snapshot(docs: list, spaces: list[str]) -> Snapshot:
    """Parse what the reading printed: per namespace, `ip -s -j link` then `tc -s -j qdisc`."""
    snap = Snapshot()
    for ns, links, qdiscs in zip(spaces, docs[0::2], docs[1::2]):
        for link in links or []:
            snap.links[(ns, link.get("ifname", ""))] = link.get("stats64", {})
        for qdisc in qdiscs or []:
            snap.qdiscs[(ns, qdisc.get("dev", ""), qdisc.get("handle", ""))] = qdisc
    return snap


def delta(before: dict, after: dict, way: str, key: str) -> int:
    """How much one counter grew."""
    return int(after.get(way, {}).get(key, 0)) - int(before.get(way, {}).get(key, 0))


@dataclass
class Probe:
    """The namespaces and devices on the path, their counters around one ping, and drops."""

    nets: Nets
    devices: list[tuple[Ns, str]]
    family: int
    before: Snapshot = field(default_factory=Snapshot)
    after: Snapshot = field(default_factory=Snapshot)
    reasons: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ran: bool = False

    @property
    def spaces(self) -> list[str]:
        """The named namespaces on the path, in order."""
        return list(dict.fromkeys(ns for ns, _ in self.devices if ns is not None))

    def read(self) -> Snapshot:
        """One process: links and qdiscs with their counters, for every namespace on the path."""
        read = reader.counters(self.spaces, self.nets.counted)
        return snapshot([doc for ns in self.spaces for doc in read.get(ns, [None, None])],
                        self.spaces)

    def run(self, ping: Callable[[], object]) -> object:
        """Read, ping with the drop tracepoint on, read again; return what ping returned."""
        from veth_wrap.kernel.droptrace import watching

        self.before = self.read()
        with watching(self.nets.counted, self.family) as watch:  # its mount is counted too
            answer = ping()
            self.nets.counted.add()
        self.after = self.read()
        self.reasons, self.ran = watch.drops, True
        if watch.note:
            self.notes.append(watch.note)
        return answer

    def counters(self) -> list[str]:
        """Per device on the path: the packets sent and received during the ping."""
        lines = []
        for ns, dev in dict.fromkeys(self.devices):
            old, new = self.before.links.get((ns, dev)), self.after.links.get((ns, dev))
            if old is None or new is None:
                continue
            parts = [f"{way} +{delta(old, new, way, 'packets')}" for way in ("tx", "rx")]
            dropped = [f"{way} dropped +{n}" for way in ("tx", "rx")
                       if (n := delta(old, new, way, "dropped"))]
            lines.append(f"{dev} ({label(ns)}): " + ", ".join(parts + dropped))
        return lines

    def stops(self, forward: list[tuple[Ns, str]]) -> str:
        """Where the counters say the requests stop on the forward path (devices in order:
        out, in, out, in ...), or "" when they cannot tell."""
        grew = []
        for ns, dev in forward:
            link = self.nets.link(ns, dev)
            if link is not None and link.kind == "bridge":
                continue  # a bridge's ports count; the bridge device itself is not a hop
            old, new = self.before.links.get((ns, dev)), self.after.links.get((ns, dev))
            if old is None or new is None:
                return ""
            grew.append((ns, dev, delta(old, new, "tx", "packets"),
                         delta(old, new, "rx", "packets")))
        for (ns, dev, tx, _), (far_ns, far, _, rx) in zip(grew[0::2], grew[1::2]):
            if tx > 0 and rx == 0:
                return (f"the requests leave {dev} in {label(ns)} (tx +{tx}) but never arrive "
                        f"at {far} in {label(far_ns)} (rx +0)")
        if not grew:
            return ""
        ns, dev, tx, rx = grew[-1]
        if rx >= ECHOES and tx < ECHOES:
            return (f"the requests arrive at {dev} in {label(ns)} (rx +{rx}) and no echo reply "
                    f"leaves it (tx +{tx}: fewer than the {ECHOES} replies; ARP counts too)")
        # a fresh link's own traffic (ARP, IPv6 solicitations) blurs the rest: the numbers only
        return f"the last device on the way, {dev} in {label(ns)}, received +{rx} and sent +{tx}"

    def evidence(self) -> list[str]:
        """The counters and the kernel's drop reasons, as evidence lines."""
        found = ["counters during a test ping (ip -s -j link): " + "; ".join(self.counters())]
        if self.reasons:
            found.append("the kernel's drop reasons during it (skb:kfree_skb; the whole host): "
                         + ", ".join(d.text() for d in self.reasons[:4]))
        return found

    def tc_drops(self) -> Finding | None:
        """A qdisc on the path whose drop counter rose during the ping, with its fix."""
        rose = []
        for (ns, dev, handle), new in self.after.qdiscs.items():
            old = self.before.qdiscs.get((ns, dev, handle))
            grew = int(new.get("drops", 0)) - int((old or new).get("drops", 0))
            if grew > 0 and (ns, dev) in self.devices and new.get("kind") != "netem":
                rose.append((ns, dev, new, grew))
        return _finding(self.nets, rose) if rose else None


def _finding(nets: Nets, rose: list) -> Finding | None:
    ns, dev, qdisc, grew = rose[0]
    kind = qdisc.get("kind", "")
    evidence = [f"tc -s -j qdisc in {label(ns)}: {kind} {qdisc.get('handle')} on {dev} dropped "
                f"{grew} packet{'s' if grew > 1 else ''} during a test ping"]
    prefix = ["tc", *(["-n", ns] if ns else [])]
    found = Finding(Cause.TC_DROP, f"tc on {dev} in {label(ns)} drops the packets ({kind})",
                    evidence, namespace=ns, decided_by="tc")
    if kind != "clsact":
        if qdisc.get("root"):
            found.fix([*prefix, "qdisc", "del", "dev", dev, "root"], _readd(prefix, dev, qdisc))
        return found
    for hook in ("ingress", "egress"):
        filters = reader.one(ns, reader.tc_filters(dev, hook), nets.counted) or []
        for item in filters:
            opts = item.get("options")
            if opts and item.get("kind") != "bpf" and _shoots(opts):
                _drop_filter(found, prefix, dev, hook, item)
                continue
            if not opts or item.get("kind") != "bpf" or lossbpf.decode([item]) is not None:
                continue  # a loss filter of ours is link-impaired's to name
            code = _bytecode(opts)
            found.evidence.append(f"filter {hook} pref {item.get('pref')} bpf"
                                  + (" direct-action" if opts.get("direct-action") else "")
                                  + (f" bytecode '{code}'" if code else ""))
            spec = [hook, "pref", str(item.get("pref"))]
            undo = [*prefix, "filter", "add", "dev", dev, *spec, "bpf",
                    *(["da"] if opts.get("direct-action") else []), "bytecode", code] \
                if code else None
            found.fix([*prefix, "filter", "del", "dev", dev, *spec], undo)
    return found


def _shoots(opts: dict) -> bool:
    """True when a filter's actions drop what it matches (gact drop)."""
    return any(a.get("kind") == "gact" and (a.get("control_action") or {}).get("type") == "drop"
               for a in opts.get("actions") or [])


def _drop_filter(found: Finding, prefix: list[str], dev: str, hook: str, item: dict) -> None:
    """A classifier with a drop action on the hook: named, removed by pref (a matchall with
    nothing else is added back the same way)."""
    kind, pref = item.get("kind"), str(item.get("pref"))
    found.evidence.append(f"filter {hook} pref {pref} {kind} action drop")
    spec = [hook, "pref", pref]
    plain = kind == "matchall" and set(item["options"]) <= {"actions", "not_in_hw", "in_hw",
                                                           "in_hw_count", "skip_hw",
                                                           "skip_sw"}
    undo = [*prefix, "filter", "add", "dev", dev, *spec, "matchall", "action", "drop"] \
        if plain else None
    found.fix([*prefix, "filter", "del", "dev", dev, *spec], undo)


def _bytecode(opts: dict) -> str:
    insns = (opts.get("bytecode") or {}).get("insns") or []
    try:
        return ",".join([str(len(insns))] + [f"{i['code']} {i['jt']} {i['jf']} {i['k']}"
                                             for i in insns]) if insns else ""
    except (KeyError, TypeError):
        return ""


def _readd(prefix: list[str], dev: str, qdisc: dict) -> list[str] | None:
    """The qdisc added back, for the simple ones whose options are plain words."""
    opts = qdisc.get("options") or {}
    if qdisc.get("kind") not in ("pfifo", "bfifo") or set(opts) - {"limit"}:
        return None
    return [*prefix, "qdisc", "add", "dev", dev, "root", qdisc["kind"],
            *(["limit", str(opts["limit"])] if "limit" in opts else [])]
