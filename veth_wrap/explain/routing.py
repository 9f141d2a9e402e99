"""Policy routing as the kernel does it, from `ip -j rule list` and `ip -j route show table all`.

`ip route get` only says "Invalid argument" for a blackhole, "Permission denied" for a
prohibit and "No route to host" for an unreachable; this replays the lookup on what was read
to name the rule or route that answered, and the route the lookup reaches once it is gone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

BLOCKING = ("blackhole", "unreachable", "prohibit")
ROUTABLE = ("unicast", "local", "broadcast", "anycast", "multicast")
_NO_SRC = ("all", "", None)


@dataclass
class Block:
    """A rule or route that stops the lookup: what it is, and its fix and undo (ip words)."""

    kind: str  # "rule" or "route"
    action: str  # blackhole, unreachable, prohibit or throw
    entry: dict
    text: str
    fix: list[str]
    undo: list[str]


@dataclass
class Lookup:
    """The blocks met, in the order the kernel meets them, and the route reached past them."""

    blocks: list[Block] = field(default_factory=list)
    route: dict | None = None
    table: str = ""


def route_network(dst: str, version: int):
    """A route's destination as a network of that IP version ("default": all of it), else None."""
    if dst == "default":
        return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
    try:
        net = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None
    return net if net.version == version else None


def _in(address, prefix: str | None, plen) -> bool:
    if prefix in _NO_SRC:
        return True
    text = prefix if plen is None or "/" in str(prefix) else f"{prefix}/{plen}"
    net = route_network(text, address.version)
    return net is not None and address in net


def rule_matches(rule: dict, dst: str, src: str | None, iif: str | None) -> bool:
    """True when a rule selects the packet (a selector it cannot judge counts as no match)."""
    address = ipaddress.ip_address(dst)
    hit = _in(address, rule.get("dst"), rule.get("dstlen"))
    if rule.get("src") not in _NO_SRC:
        hit = hit and src is not None and _in(ipaddress.ip_address(src), rule["src"],
                                               rule.get("srclen"))
    if "iif" in rule:
        hit = hit and rule["iif"] == (iif or "lo")
    if "oif" in rule or "fwmark" in rule or "uidrange" in rule or "ipproto" in rule:
        hit = hit and rule.get("fwmark", "0x0") in ("0", "0x0") and "oif" not in rule \
            and "ipproto" not in rule
    return not hit if rule.get("not") else hit


def _table_of(route: dict) -> str:
    return str(route.get("table", "main"))


def best_route(routes: list[dict], table: str, dst: str, skip: list[dict]) -> dict | None:
    """The longest-prefix route of a table covering dst (lowest metric first), skipping some."""
    address = ipaddress.ip_address(dst)
    best, key = None, None
    for route in routes:
        if _table_of(route) != table or any(route is s for s in skip):
            continue
        net = route_network(route.get("dst") or "default", address.version)
        if net is None or address not in net:
            continue
        rank = (net.prefixlen, -int(route.get("metric", 0) or 0))
        if key is None or rank > key:
            best, key = route, rank
    return best


def lookup(rules: list[dict], routes: list[dict], dst: str, src: str | None = None,
           iif: str | None = None, family: int = 4) -> Lookup:
    """Walk the rules in priority order as the kernel does, noting each block on the way."""
    found = Lookup()
    throws: list[dict] = []
    past: tuple[dict, str] | None = None  # the route a table holds once its throw is gone
    for rule in sorted(rules, key=lambda r: r.get("priority", 0)):
        if not rule_matches(rule, dst, src, iif):
            continue
        action = rule.get("action", "")
        if action in BLOCKING:
            found.blocks.append(_rule_block(rule, action, family))
            continue
        if action not in ("", "to_tbl", "lookup") or "table" not in rule:
            continue
        table, skip = str(rule["table"]), []
        while True:
            route = best_route(routes, table, dst, skip)
            kind = (route or {}).get("type", "unicast")
            if route is None or kind in ROUTABLE:
                break
            if kind == "throw":
                throws.append(route)
                beyond = best_route(routes, table, dst, [*skip, route])
                if past is None and beyond is not None and \
                        beyond.get("type", "unicast") in ROUTABLE:
                    past = (beyond, table)
                break
            found.blocks.append(_route_block(route, kind))
            skip.append(route)
        if route is not None and kind in ROUTABLE:
            found.route, found.table = route, table
            return found
    found.blocks += [_route_block(route, "throw") for route in throws]
    if past is not None:
        found.route, found.table = past
    return found


def _rule_spec(rule: dict) -> list[str]:
    words = ["pref", str(rule.get("priority", 0))]
    if rule.get("not"):
        words.append("not")
    for key, word in (("src", "from"), ("dst", "to")):
        if rule.get(key) not in _NO_SRC:
            plen = rule.get(f"{key}len")
            words += [word, rule[key] + (f"/{plen}" if plen is not None else "")]
    for key in ("iif", "oif", "fwmark"):
        if key in rule:
            words += [key, str(rule[key])]
    return words


def _rule_block(rule: dict, action: str, family: int) -> Block:
    spec = _rule_spec(rule)
    flag = ["-6"] if family == 6 else []
    return Block("rule", action, rule, f"rule {' '.join(spec)} {action}",
                 [*flag, "rule", "del", *spec, action], [*flag, "rule", "add", *spec, action])


def _route_block(route: dict, kind: str) -> Block:
    dst = route.get("dst", "default")
    table = _table_of(route)
    where = [] if table == "main" else ["table", table]
    extra = ["metric", str(route["metric"])] if route.get("metric") else []
    spec = [kind, dst, *where, *extra]
    text = f"route {kind} {dst}" + (f" in table {table}" if where else "")
    return Block("route", kind, route, text, ["route", "del", *spec], ["route", "add", *spec])
