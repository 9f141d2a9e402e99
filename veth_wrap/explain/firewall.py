"""Firewalls on the path: iptables and nftables rules and policies that drop the pings.

Rules with counters are judged by what a second ping added to them; rules without counters
(nftables rules without `counter`) and chain policies by a small matcher that knows addresses
and protocols and treats anything else as "may match".
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass, field

Cond = tuple[str, bool, tuple[str, ...]]  # (field, negated, values)
HOOKS = {"PREROUTING": "prerouting", "INPUT": "input", "OUTPUT": "output",
         "FORWARD": "forward", "POSTROUTING": "postrouting"}  # every table's built-in chains
ICMP = {"icmp", "1", "ipv6-icmp", "icmpv6", "58", "all"}
FAMILIES = {4: ("ip", "inet", "bridge", "netdev", "arp"), 6: ("ip6", "inet", "bridge", "netdev")}
DEVICE_HOOKS = ("ingress", "egress")  # netdev (and inet ingress): bound to one device
# where a namespace's role puts the requests and the replies, hook by hook
ROLE_HOOKS = {"source": {"output": "q", "postrouting": "q", "prerouting": "r", "input": "r"},
              "dest": {"prerouting": "q", "input": "q", "output": "r", "postrouting": "r"},
              "router": {"prerouting": "qr", "forward": "qr", "postrouting": "qr"},
              "bridge": {"prerouting": "qr", "forward": "qr", "postrouting": "qr"}}


@dataclass(frozen=True)
class Packet:
    """The pings as a firewall sees them: one direction."""

    src: str
    dst: str
    what: str  # "requests" or "replies"

    @property
    def family(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.src).version


@dataclass
class Rule:
    """One rule: its matches, verdict, packet counter and the command that deletes it."""

    family: str
    table: str
    chain: str
    verdict: str
    conds: list[Cond]
    counter: int | None
    key: str
    text: str
    delete: list[str]
    raw: dict | None = None  # the rule as nft -j printed it

    def matches(self, packet: Packet) -> bool | None:
        """True/False when known, None when some match is beyond this module."""
        results = [_cond(c, packet) for c in self.conds]
        if False in results:
            return False
        return None if None in results else True


@dataclass
class Chain:
    """A chain with its hook (for base chains) and policy."""

    tool: str
    family: str
    table: str
    name: str
    hook: str | None
    policy: str | None
    rules: list[Rule] = field(default_factory=list)
    device: str = ""  # the device a netdev (or inet ingress) chain is bound to
    managed: bool = False  # an iptables-nft chain (nft lists its table too)


@dataclass(frozen=True)
class Place:
    """A namespace on the path and its role there: source, router, dest or bridge."""

    ns: str | None
    role: str
    device: str = ""
    call_iptables: bool = False  # bridges: br_netfilter hands bridged IPv4 to iptables
    devices: tuple[str, ...] = ()  # the devices of this namespace the packets cross


@dataclass
class Drop:
    """A rule or a policy that drops one direction of the pings."""

    place: Place
    chain: Chain
    rule: Rule | None
    packet: Packet
    confirmed: bool
    insert_into: str = ""  # the chain an ACCEPT rule goes into (DOCKER-USER on Docker hosts)


def _cond(cond: Cond, packet: Packet) -> bool | None:
    name, negated, values = cond
    if name in ("saddr", "daddr"):
        address = ipaddress.ip_address(packet.src if name == "saddr" else packet.dst)
        try:
            hit = any(address in ipaddress.ip_network(v, strict=False) for v in values)
        except ValueError:
            return None
    elif name == "proto":
        hit = any(v.lower() in ICMP for v in values)
    elif name == "nfproto":
        hit = f"ipv{packet.family}" in values
    else:
        return None
    return hit != negated


def parse_iptables_save(text: str, tool: str = "iptables") -> list[Chain]:
    """Parse `iptables-save -c` (or ip6tables-save) output into chains with rules."""
    chains: dict[tuple[str, str], Chain] = {}
    table = ""
    family = "ip6" if tool.startswith("ip6") else "ip"
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            name, policy = (line[1:].split() + ["-"])[:2]
            hook = HOOKS.get(name)
            chains[(table, name)] = Chain(tool, family, table, name, hook,
                                          None if policy == "-" else policy.lower())
        elif "-A " in line:
            rule = _iptables_rule(line, table, family, tool)
            chain = chains.setdefault((table, rule.chain),
                                      Chain(tool, family, table, rule.chain, None, None))
            chain.rules.append(rule)
    return list(chains.values())


def _iptables_rule(line: str, table: str, family: str, tool: str) -> Rule:
    counter = None
    if line.startswith("["):
        counter = int(line[1:line.index(":")])
        line = line[line.index("]") + 1:]
    tokens = shlex.split(line)
    chain, spec = tokens[1], tokens[2:]
    verdict, conds = _iptables_spec(spec)
    return Rule(family, table, chain, verdict, conds, counter, " ".join(spec),
                f"-A {chain} {shlex.join(spec)}", [tool, "-t", table, "-D", chain, *spec])


_OPTS = {"-s": "saddr", "--source": "saddr", "-d": "daddr", "--destination": "daddr",
         "-p": "proto", "--protocol": "proto"}


def _iptables_spec(spec: list[str]) -> tuple[str, list[Cond]]:
    verdict, conds, negate, i = "", [], False, 0
    while i < len(spec):
        word = spec[i]
        if word == "!":
            negate = True
        elif word in _OPTS and i + 1 < len(spec):
            conds.append((_OPTS[word], negate, tuple(spec[i + 1].split(","))))
            negate, i = False, i + 1
        elif word in ("-j", "--jump", "-g", "--goto") and i + 1 < len(spec):
            verdict, i = spec[i + 1].lower(), i + 1
        elif word in ("-m", "--match") and i + 1 < len(spec):
            i += 1
            if spec[i] != "comment":
                conds.append(("unknown", False, (spec[i],)))
        elif word.startswith("-") and word not in ("--comment",):
            if word not in ("--icmp-type", "--icmpv6-type") or not conds or \
                    conds[-1][0] != "unknown":
                conds.append(("unknown", negate, (word,)))
            negate = False
        i += 1
    return verdict, conds


def parse_nft(data: dict | list) -> list[Chain]:
    """Parse `nft -j -a list ruleset` output into chains with rules."""
    items = data.get("nftables", []) if isinstance(data, dict) else data
    chains: dict[tuple[str, str, str], Chain] = {}
    sets = {(s["family"], s["table"], s["name"]): s.get("elem", [])
            for s in (item["set"] for item in items if "set" in item)}
    for item in items:
        if "chain" in item:
            c = item["chain"]
            dev = c.get("dev", "")
            chains[(c["family"], c["table"], c["name"])] = Chain(
                "nft", c["family"], c["table"], c["name"], c.get("hook"), c.get("policy"),
                device=dev[0] if isinstance(dev, list) and dev else str(dev))
        elif "rule" in item:
            r = item["rule"]
            chain = chains.get((r["family"], r["table"], r["chain"]))
            if chain is not None:
                chain.rules.append(_nft_rule(r, sets))
    return list(chains.values())


def _nft_rule(r: dict, sets: dict | None = None) -> Rule:
    verdict, conds, counter = "", [], None
    for expr in r.get("expr", []):
        kind = next(iter(expr))
        if kind == "match":
            conds.append(_named_set(_nft_match(expr["match"]), r, sets or {}))
        elif kind == "counter":
            counter = expr["counter"].get("packets", 0)
        elif kind in ("accept", "drop", "reject", "jump", "goto", "return"):
            verdict = kind
        elif kind in ("xt", "ct", "meta", "payload"):
            conds.append(("unknown", False, (kind,)))
    handle = str(r.get("handle", ""))
    text = f"{r['family']} {r['table']} {r['chain']} handle {handle}: " + json.dumps(
        r.get("expr", []), separators=(",", ":"))[:200]
    return Rule(r["family"], r["table"], r["chain"], verdict, conds, counter, handle, text,
                ["nft", "delete", "rule", r["family"], r["table"], r["chain"], "handle", handle],
                r)


def _nft_match(match: dict) -> Cond:
    left, right, op = match.get("left", {}), match.get("right"), match.get("op", "==")
    negated = op == "!="
    if isinstance(left, dict) and "payload" in left:
        fld = left["payload"].get("field")
        name = {"saddr": "saddr", "daddr": "daddr", "protocol": "proto",
                "nexthdr": "proto"}.get(fld, "unknown")
    elif isinstance(left, dict) and "meta" in left:
        name = {"l4proto": "proto", "nfproto": "nfproto"}.get(left["meta"].get("key"), "unknown")
    else:
        name = "unknown"
    return name, negated, _nft_values(right)


def _named_set(cond: Cond, rule: dict, sets: dict) -> Cond:
    """A match on a named set (`ip saddr @blocked`) with the set's elements as its values."""
    name, negated, values = cond
    if len(values) == 1 and values[0].startswith("@"):
        elems = sets.get((rule["family"], rule["table"], values[0][1:]))
        if elems is not None:
            return name, negated, tuple(v for e in elems for v in _nft_values(e))
    return cond


def _nft_values(right) -> tuple[str, ...]:
    if isinstance(right, dict) and "prefix" in right:
        return (f"{right['prefix']['addr']}/{right['prefix']['len']}",)
    if isinstance(right, dict) and "set" in right:
        return tuple(v for item in right["set"] for v in _nft_values(item))
    return (str(right),)


def hooked(place: Place, packets: tuple[Packet, Packet],
           chain: Chain | None = None) -> dict[str, list[Packet]]:
    """Which packets cross which hook in a place: requests and replies. A chain bound to a
    device (ingress, egress) sees both when the device is on the path; ARP's chains see the
    address resolution both directions need."""
    if chain is not None and chain.hook in DEVICE_HOOKS:
        on_path = not place.devices or chain.device in place.devices
        return {chain.hook: list(packets)} if on_path else {}
    if chain is not None and chain.family == "arp":
        return {} if place.role == "bridge" else {"input": list(packets),
                                                  "output": list(packets)}
    return {hook: [packets[0 if w == "q" else 1] for w in which]
            for hook, which in ROLE_HOOKS[place.role].items()}


def find_drops(place: Place, before: list[Chain], after: list[Chain],
               packets: tuple[Packet, Packet]) -> list[Drop]:
    """The rules and policies of one place that drop the pings, counted or judged."""
    counted = {(c.tool, c.family, c.table, c.name, r.key): r.counter
               for c in before for r in c.rules}
    drops = _counted_elsewhere(place, after, packets[0], counted)
    for chain, hook_packets in _relevant(place, after, packets):
        for packet in hook_packets:
            drop = _judge(place, chain, packet, counted)
            if drop is not None and not any(d.rule is drop.rule and d.chain is chain
                                            and drop.rule is not None for d in drops):
                drops.append(drop)
    docker = any(c.name == "DOCKER-USER" and c.tool == "iptables" for c in after)
    for drop in drops:
        if drop.rule is None and drop.chain.name == "FORWARD" and docker:
            drop.insert_into = "DOCKER-USER"
    return drops


def _relevant(place: Place, chains: list[Chain], packets: tuple[Packet, Packet]):
    family = packets[0].family
    for chain in chains:
        by_hook = hooked(place, packets, chain)
        if chain.hook not in by_hook or chain.family not in FAMILIES[family]:
            continue
        if place.role == "bridge" and chain.family != "bridge" and not place.call_iptables:
            continue
        if place.role != "bridge" and chain.family == "bridge" or \
                place.role == "bridge" and chain.family == "arp":
            continue
        yield chain, by_hook[chain.hook]


def _judge(place: Place, chain: Chain, packet: Packet, counted: dict) -> Drop | None:
    for rule in chain.rules:
        hit = rule.matches(packet)
        if hit is False:
            continue
        grown = None
        if rule.counter is not None:
            old = counted.get((chain.tool, chain.family, chain.table, chain.name, rule.key))
            grown = rule.counter > (old if old is not None else rule.counter)
        if rule.verdict in ("drop", "reject"):
            if grown or (rule.counter is None and hit is not False):
                return Drop(place, chain, rule, packet, bool(grown))
            continue
        if rule.verdict == "accept" and (hit or grown or (hit is None and grown is None)):
            return None
    if chain.policy == "drop":
        return Drop(place, chain, None, packet, False)
    return None


def _counted_elsewhere(place: Place, chains: list[Chain], packet: Packet,
                       counted: dict) -> list[Drop]:
    """Drop rules outside base chains (reached by a jump) whose counter the ping raised."""
    drops = []
    for chain in chains:
        if chain.hook is not None:
            continue
        for rule in chain.rules:
            old = counted.get((chain.tool, chain.family, chain.table, chain.name, rule.key))
            if rule.verdict in ("drop", "reject") and rule.counter is not None \
                    and old is not None and rule.counter > old:
                drops.append(Drop(place, chain, rule, packet, True))
    return drops
