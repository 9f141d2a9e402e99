"""Fix commands: argv lists that a diagnosis prints, shell-quoted, ready to paste."""

from __future__ import annotations

import ipaddress
import shlex

from veth_wrap.explain.nets import Ns, matching_route

Fix = list[str]


def ip_n(ns: Ns, *args: str) -> Fix:
    """`ip -n NS ...`, or plain `ip ...` for the root namespace."""
    return ["ip", *(["-n", ns] if ns is not None else []), *args]


def ns_exec(ns: Ns, *args: str) -> Fix:
    """`ip netns exec NS ...`, or the bare command for the root namespace."""
    return ["ip", "netns", "exec", ns, *args] if ns is not None else list(args)


def link_up(ns: Ns, dev: str) -> Fix:
    """Set an interface administratively up."""
    return ip_n(ns, "link", "set", "dev", dev, "up")


def sysctl_fix(ns: Ns, values: dict[str, str]) -> Fix:
    """Write sysctls inside a namespace."""
    return ns_exec(ns, "sysctl", "-w", *(f"{k}={v}" for k, v in values.items()))


def route_fix(ns: Ns, net: str, dev: str, via: str | None, current: dict | None,
              routes: list[dict], target: str) -> Fix:
    """Change the route that sends target out of the wrong device, or add one for net."""
    match = matching_route(routes, target, current["dev"]) if current else None
    next_hop = (["via", via] if via else []) + ["dev", dev]
    if match is None or match.get("dst") == "default" or _wider(match["dst"], net):
        return ip_n(ns, "route", "add", net, *next_hop)  # what else the wider one carries stays
    extra = ["metric", str(match["metric"])] if match.get("metric") else []
    return ip_n(ns, "route", "change", match["dst"], *next_hop, *extra)


def _wider(dst: str, net: str) -> bool:
    """True when a route's destination is a wider network than net."""
    try:
        return ipaddress.ip_network(dst, strict=False).prefixlen < \
            ipaddress.ip_network(net, strict=False).prefixlen
    except ValueError:
        return False


def shell_line(fix: Fix) -> str:
    """One command as a shell line, every word quoted as needed."""
    return " ".join(shlex.quote(word) for word in fix)


def unique(fixes: list[Fix]) -> list[Fix]:
    """The fixes without repeats, in order."""
    seen: list[Fix] = []
    for fix in fixes:
        if fix not in seen:
            seen.append(fix)
    return seen
