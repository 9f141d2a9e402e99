"""IPsec policies on the path: a block policy, or one that wants a transform no state provides.

`ip xfrm` prints no JSON, so its text is read: a policy or state is a block of lines that
starts with `src A dst B`; a policy has a `dir` line, a state an `spi`. The kernel checks the
requests and the replies against the policies of each namespace they cross: `out` where they
leave, `in` where they arrive, `fwd` where they are routed on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.firewall import Packet, Place
from veth_wrap.explain.fixes import ip_n
from veth_wrap.explain.nets import Nets, Ns, label
from veth_wrap.kernel import reader

# the direction a policy has for the requests (q) and the replies (r), by the place's role
DIRECTIONS = {"source": {"out": "q", "in": "r"}, "dest": {"in": "q", "out": "r"},
              "router": {"fwd": "qr"}}


@dataclass
class Policy:
    """One xfrm policy: selector, direction, action and the transforms it wants."""

    src: str
    dst: str
    direction: str
    action: str = "allow"
    priority: str = "0"
    templates: list[dict[str, str]] = field(default_factory=list)
    text: str = ""

    def selects(self, packet: Packet) -> bool:
        """True when the selector covers the packet's addresses."""
        try:
            return ipaddress.ip_address(packet.src) in ipaddress.ip_network(self.src, False) \
                and ipaddress.ip_address(packet.dst) in ipaddress.ip_network(self.dst, False)
        except ValueError:
            return False


def _words(line: str) -> dict[str, str]:
    words = line.split()
    return {words[i]: words[i + 1] for i in range(len(words) - 1)}


def parse(text: str) -> tuple[list[Policy], list[dict[str, str]]]:
    """(policies, states) from `ip xfrm policy` and `ip xfrm state` output."""
    blocks: list[list[str]] = []
    for row in text.splitlines():
        if row.startswith("src "):
            blocks.append([row])
        elif blocks and row.strip():
            blocks[-1].append(row.strip())
    policies, states = [], []
    for block in blocks:
        head = _words(block[0])
        rest = {k: v for line in block[1:] for k, v in _words(line).items()}
        if any(line.startswith("dir ") for line in block[1:]):
            policy = Policy(head.get("src", ""), head.get("dst", ""), rest.get("dir", ""),
                            rest.get("action", "allow"), rest.get("priority", "0"),
                            text=" ".join(block))
            for i, line in enumerate(block[1:], 1):
                if line.startswith("tmpl "):
                    tmpl = _words(line) | _words(block[i + 1] if i + 1 < len(block) else "")
                    policy.templates.append(tmpl)
            if "socket" not in rest.get("dir", "") and policy.direction:
                policies.append(policy)
        elif "spi" in rest:
            states.append({"src": head.get("src", ""), "dst": head.get("dst", ""), **rest})
    return policies, states


def _provided(policy: Policy, states: list[dict[str, str]]) -> bool:
    """True when every transform the policy wants has a state (an SA) to match it."""
    for tmpl in policy.templates:
        wanted = [s for s in states if s.get("proto") == tmpl.get("proto")
                  and tmpl.get("mode", "transport") == s.get("mode", "transport")]
        if tmpl.get("reqid", "0") != "0":
            wanted = [s for s in wanted if s.get("reqid") == tmpl["reqid"]]
        if not wanted and tmpl.get("level") != "use":
            return False
    return True


def inspect(nets: Nets, places: list[Place], packets: tuple[Packet, Packet],
            checked: list[str]) -> Finding | None:
    """Name the first policy on the path that blocks the pings or wants a missing state."""
    read: dict[Ns, tuple[list[Policy], list]] = {}
    for place in places:
        if place.ns is None or place.role not in DIRECTIONS:
            continue
        if place.ns not in read:
            read[place.ns] = parse(reader.xfrm(place.ns, nets.counted))
            checked.append(f"xfrm in {label(place.ns)}: {len(read[place.ns][0])} policies, "
                           f"{len(read[place.ns][1])} states")
        policies, states = read[place.ns]
        for direction, which in DIRECTIONS[place.role].items():
            for packet in (packets[0 if w == "q" else 1] for w in which):
                found = _judge(place, direction, packet, policies, states)
                if found is not None:
                    return found
    return None


def _judge(place: Place, direction: str, packet: Packet, policies: list[Policy],
           states: list) -> Finding | None:
    ordered = sorted((p for p in policies if p.direction == direction and p.selects(packet)),
                     key=lambda p: int(p.priority) if p.priority.isdigit() else 0)
    if not ordered:
        return None
    policy, ns = ordered[0], place.ns  # the kernel applies the first by priority
    evidence = [f"ip xfrm policy in {label(ns)}: {policy.text}",
                f"the {packet.what} ({packet.src} -> {packet.dst}) meet it at the xfrm "
                f"'{direction}' check"]
    if policy.action == "block":
        found = Finding(Cause.XFRM_BLOCK, f"an xfrm policy in {label(ns)} blocks the "
                        f"{packet.what} (dir {direction}, action block)", evidence,
                        namespace=ns, decided_by="xfrm")
        sel = ["src", policy.src, "dst", policy.dst, "dir", direction]
        return found.fix(ip_n(ns, "xfrm", "policy", "del", *sel),
                         ip_n(ns, "xfrm", "policy", "add", *sel, "action", "block",
                              "priority", policy.priority))
    if policy.templates and not _provided(policy, states):
        evidence.append(f"no xfrm state in {label(ns)} provides its transform ("
                        + ", ".join(f"{t.get('proto')} {t.get('mode', '')}".strip()
                                    for t in policy.templates)
                        + "): add the security association, or delete the policy if the "
                        "traffic is not meant to be protected")
        return Finding(Cause.XFRM_NO_STATE, f"an xfrm policy in {label(ns)} wants IPsec for "
                       f"the {packet.what} (dir {direction}), and no state provides it",
                       evidence, namespace=ns, decided_by="xfrm")
    return None
