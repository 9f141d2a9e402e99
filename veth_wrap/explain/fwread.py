"""Reading the firewalls of the namespaces on a path, and turning drops into a finding."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable

from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.firewall import (
    Chain,
    Drop,
    Packet,
    Place,
    find_drops,
    parse_iptables_save,
    parse_nft,
)
from veth_wrap.explain.fixes import Fix, ns_exec
from veth_wrap.explain.nets import Nets, Ns, label

BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def tables_loaded() -> tuple[bool, bool]:
    """(nf_tables, legacy ip_tables) in the kernel, found without loading any module."""
    # without /proc/modules the kernel cannot load modules, so asking nft loads nothing
    modular = os.path.exists("/proc/modules")
    nft = os.path.isdir("/sys/module/nf_tables") or not modular
    return nft, os.path.exists("/proc/net/ip_tables_names")


def read_chains(nets: Nets, ns: Ns, family: int) -> tuple[list[Chain], list[str]]:
    """Every chain of a namespace (iptables-save and nft), and notes on what was read."""
    nft_loaded, legacy = tables_loaded()
    save = "iptables-save" if family == 4 else "ip6tables-save"
    chains: list[Chain] = []
    notes = []
    managed: set[str] = set()
    if shutil.which(save) and (nft_loaded or legacy):
        text = nets.run(ns_exec(ns, save, "-c")).stdout
        chains += parse_iptables_save(text, save.replace("-save", ""))
        notes.append(f"{save} in {label(ns)}: {len(chains)} chains")
        if "(nf_tables)" in text:
            managed = {c.table for c in chains}
    if shutil.which("nft") and nft_loaded:
        text = nets.run(ns_exec(ns, "nft", "-j", "-a", "list", "ruleset")).stdout
        own = "ip" if family == 4 else "ip6"
        found = [c for c in parse_nft(_json(text))
                 if not (c.family == own and c.table in managed)]
        chains += found
        notes.append(f"nft in {label(ns)}: {len(found)} chains besides iptables'")
    return chains, notes


def read_many(nets: Nets, spaces: list[Ns], family: int) -> dict[Ns, tuple[list[Chain], list]]:
    """read_chains for several namespaces: the named ones in one `ip -batch` (each one's
    iptables-save text ends where its `nft -j` line, one JSON document, begins)."""
    nft_loaded, legacy = tables_loaded()
    save = "iptables-save" if family == 4 else "ip6tables-save"
    named = [ns for ns in spaces if ns is not None]
    found: dict[Ns, tuple[list[Chain], list]] = {}
    if len(named) > 1 and shutil.which("nft") and nft_loaded and shutil.which(save):
        lines = [f"netns exec {ns} {cmd}" for ns in named
                 for cmd in (f"{save} -c", "nft -j -a list ruleset")]
        out = nets.run(["ip", "-batch", "-"], stdin="".join(ln + "\n" for ln in lines)).stdout
        for ns, (text, doc) in zip(named, _split_saves(out)):
            found[ns] = _chains_of(ns, text, doc, save, family)
    for ns in spaces:  # the root namespace, and any the batch did not reach (gone meanwhile)
        if ns not in found:
            found[ns] = read_chains(nets, ns, family)
    return found


def _split_saves(out: str) -> list[tuple[str, str]]:
    """(iptables-save text, nft JSON) per namespace, in batch order."""
    parts, text = [], []
    for row in out.splitlines(keepends=True):
        if row.startswith("{"):
            parts.append(("".join(text), row))
            text = []
        else:
            text.append(row)
    return parts


def _chains_of(ns: Ns, text: str, doc: str, save: str,
               family: int) -> tuple[list[Chain], list[str]]:
    chains = parse_iptables_save(text, save.replace("-save", ""))
    notes = [f"{save} in {label(ns)}: {len(chains)} chains"]
    managed = {c.table for c in chains} if "(nf_tables)" in text else set()
    own = "ip" if family == 4 else "ip6"
    more = [c for c in parse_nft(_json(doc)) if not (c.family == own and c.table in managed)]
    notes.append(f"nft in {label(ns)}: {len(more)} chains besides iptables'")
    return chains + more, notes


def _json(text: str):
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}


def bridge_nf(nets: Nets, ns: Ns) -> bool:
    """True when br_netfilter hands a namespace's bridged IPv4 traffic to iptables."""
    if ns is None:
        try:
            with open(BRIDGE_NF) as handle:
                return handle.read().strip() == "1"
        except OSError:
            return False
    return nets.sysctl(ns, "net.bridge.bridge-nf-call-iptables")[
        "net.bridge.bridge-nf-call-iptables"] == "1"


def inspect(nets: Nets, places: list[Place], packets: tuple[Packet, Packet],
            again: Callable[[], object] | None, checked: list[str]) -> Finding | None:
    """Read the firewalls, ping once more, read again, and name what dropped the pings."""
    if not any(tables_loaded()) or not (shutil.which("nft") or shutil.which("iptables-save")):
        checked.append("firewalls: no nf_tables or ip_tables in the kernel, or no iptables/nft "
                       "installed: not checked")
        return None
    family = packets[0].family
    spaces = list(dict.fromkeys(p.ns for p in places))
    before = read_many(nets, spaces, family)
    read = before
    if again is not None:  # without a probe (the packets stop earlier): judged by the rules
        again()
        read = read_many(nets, spaces, family)
    drops: list[Drop] = []
    for ns in spaces:
        after, notes = read[ns]
        checked.extend(notes)
        for place in (p for p in places if p.ns == ns):
            drops += find_drops(place, before[ns][0], after, packets)
    return finding(drops, packets) if drops else None


def finding(drops: list[Drop], packets: tuple[Packet, Packet]) -> Finding:
    """A finding that names every dropping rule or policy and the commands that undo it
    (a partition of vethwrap's: that, and heal)."""
    from veth_wrap.explain.partitions import from_drops

    cut = from_drops(drops)
    if cut is not None:
        return cut
    bridged = [d for d in drops if d.place.role == "bridge" and d.chain.family != "bridge"]
    first = (bridged or drops)[0]
    cause = Cause.BR_NETFILTER_DROP if bridged else Cause.FIREWALL_DROP
    what = (f"rule {first.rule.text}" if first.rule else
            f"the DROP policy of chain {first.chain.name}")
    summary = f"{first.chain.tool} in {label(first.place.ns)} drops the {first.packet.what}: " \
              f"{what}"
    evidence = [_evidence(d) for d in drops]
    if bridged:
        evidence.append(f"br_netfilter passes traffic bridged by {first.place.device} in "
                        f"{label(first.place.ns)} to iptables "
                        "(net.bridge.bridge-nf-call-iptables = 1)")
    found = Finding(cause, summary, evidence, namespace=first.place.ns, decided_by="firewall")
    for drop in drops:
        for fix, undo in _fixes(drop):
            if fix not in found.fixes:
                found.fix(fix, undo)
    return found


def _evidence(drop: Drop) -> str:
    where = f"{label(drop.place.ns)}: {drop.chain.tool} {drop.chain.family} {drop.chain.table} " \
            f"{drop.chain.name}"
    if drop.rule is None:
        return f"{where}: policy {drop.chain.policy}, and no rule accepts the " \
               f"{drop.packet.what} ({drop.packet.src} -> {drop.packet.dst})"
    how = "its counter rose during a test ping" if drop.confirmed else "it matches the pings"
    return f"{where}: {drop.rule.text} ({how})"


def _fixes(drop: Drop) -> list[tuple[Fix, Fix | None]]:
    """Each fix with its undo (None where the state read cannot rebuild what it removes)."""
    ns = drop.place.ns
    chain, packet, rule = drop.chain, drop.packet, drop.rule
    if rule is not None:
        if chain.tool in ("iptables", "ip6tables"):
            spec = rule.delete[rule.delete.index("-D") + 2:]
            at = str(next(i for i, r in enumerate(chain.rules, 1) if r is rule))
            return [(ns_exec(ns, *rule.delete),
                     ns_exec(ns, chain.tool, "-t", chain.table, "-I", chain.name, at, *spec))]
        return [(ns_exec(ns, *rule.delete), _nft_readd(ns, rule))]
    if chain.tool in ("iptables", "ip6tables"):
        proto = "icmp" if packet.family == 4 else "ipv6-icmp"
        target = drop.insert_into or chain.name
        spec = ["-p", proto, "-s", packet.src, "-d", packet.dst, "-j", "ACCEPT"]
        head = [chain.tool, "-t", chain.table]
        return [(ns_exec(ns, *head, "-I", target, "1", *spec),
                 ns_exec(ns, *head, "-D", target, *spec))]
    fam = "ip" if packet.family == 4 else "ip6"
    return [(ns_exec(ns, "nft", "insert", "rule", chain.family, chain.table, chain.name,
                     fam, "saddr", packet.src, fam, "daddr", packet.dst, "accept"), None)]


def _nft_readd(ns: Ns, rule) -> Fix | None:
    """The deleted nft rule added back from its JSON (one word, no spaces)."""
    if rule.raw is None:
        return None
    body = {k: rule.raw[k] for k in ("family", "table", "chain", "expr") if k in rule.raw}
    text = json.dumps({"nftables": [{"add": {"rule": body}}]}, separators=(",", ":"))
    return None if " " in text else ns_exec(ns, "nft", "-j", text)
