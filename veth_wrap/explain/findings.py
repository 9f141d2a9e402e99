"""What a diagnosis finds: causes, findings with their evidence and fixes, and candidates.

Shared by the walk (walk.py) and what it asks when a hop leads nowhere (offpath.py), so that
neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from veth_wrap.explain.fixes import Fix
from veth_wrap.explain.nets import Nets, Ns, Reach


class Cause(str, Enum):
    """Why a destination does not answer."""

    ROUTE_WRONG_DEVICE = "route-wrong-device"
    ROUTING_LOOP = "routing-loop"
    NO_ROUTE = "no-route"
    GATEWAY_UNREACHABLE = "gateway-unreachable"
    LOCAL_DOWN = "local-down"
    PEER_DOWN = "peer-down"
    PEER_NO_NETNS = "peer-no-netns"
    PEER_WRONG_NETNS = "peer-wrong-netns"
    LOCAL_NO_ADDRESS = "local-no-address"
    DEST_NOT_CONFIGURED = "dest-not-configured"
    NO_CARRIER = "no-carrier"
    BRIDGE_PORT_DETACHED = "bridge-port-detached"
    BRIDGE_PORT_DOWN = "bridge-port-down"
    BRIDGE_DOWN = "bridge-down"
    FORWARDING_DISABLED = "forwarding-disabled"
    NO_RETURN_ROUTE = "no-return-route"
    RP_FILTER = "rp-filter"
    FIREWALL_DROP = "firewall-drop"
    BR_NETFILTER_DROP = "br-netfilter-drop"
    LINK_IMPAIRED = "link-impaired"
    UNDERLAY_UNREACHABLE = "underlay-unreachable"  # labs over several hosts (crossing.py)
    FAR_SIDE_MISSING = "far-side-missing"
    ROUTE_BLACKHOLE = "route-blackhole"
    ROUTE_UNREACHABLE = "route-unreachable"
    ROUTE_PROHIBIT = "route-prohibit"
    ROUTE_THROW = "route-throw"
    RULE_BLOCKS = "policy-rule-blocks"
    NEIGH_WRONG_MAC = "neighbour-wrong-mac"
    NOARP = "noarp"
    ARP_IGNORE = "arp-ignore"
    ARP_FILTER = "arp-filter"
    ARP_ANNOUNCE = "arp-announce"
    MTU_TOO_SMALL = "mtu-too-small"
    ECHO_IGNORED = "icmp-echo-ignored"
    IPV6_DISABLED = "ipv6-disabled"
    DAD_FAILED = "dad-failed"
    BRIDGE_PORT_STATE = "bridge-port-state"
    TC_DROP = "tc-drop"
    ACCEPT_LOCAL = "source-is-local"
    PARTITIONED = "partitioned"  # a partition vethwrap placed (vethwrap heal)
    XFRM_BLOCK = "xfrm-policy-blocks"
    XFRM_NO_STATE = "xfrm-no-state"
    BRIDGE_PORT_FLAG = "bridge-port-flag"
    BRIDGE_PORT_VLAN = "bridge-port-vlan"
    KERNEL_DROP = "kernel-drop"
    UNKNOWN = "unknown"


@dataclass
class Finding:
    """The first thing wrong: a cause, what shows it, and the commands that fix it."""

    cause: Cause
    summary: str
    evidence: list[str] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    source: str | None = None  # the source address (with prefix) once the fix is applied
    adds: tuple[Ns, str] | None = None  # (namespace, address/prefix) a fix adds on the path
    reply_done: bool = False  # the fixes already cover the way back
    namespace: Ns = None  # where the cause is
    direction: str = "forward"  # "forward" (the requests) or "reply"
    decided_by: str = ""  # the evidence source that named it: route, rule, neigh, sysctl, ...
    undo: dict[tuple[str, ...], Fix] = field(default_factory=dict)  # fix -> its inverse
    end: Ns = None  # the namespace the packets reach once the fixes are applied
    passable: bool = False  # the walk went on past it (it names what to undo, not a dead end)

    def fix(self, argv: Fix, undo: Fix | None) -> Finding:
        """Add a fix and how to undo it (None: only the generic inverse can)."""
        self.fixes.append(argv)
        if undo is not None:
            self.undo[tuple(argv)] = undo
        return self

    def to_json(self) -> dict:
        """One cause as --json lists it."""
        from veth_wrap.explain.fixes import shell_line

        return {"cause": self.cause.value, "namespace": self.namespace,
                "direction": self.direction, "summary": self.summary,
                "evidence": list(self.evidence), "decided_by": self.decided_by,
                "fix": [shell_line(f) for f in self.fixes]}


@dataclass(frozen=True)
class Candidate:
    """An interface of a namespace that leads to an address, directly or through a router."""

    ifname: str
    reach: Reach
    via: str | None = None


class PathWalk(Protocol):
    """What the helpers of a walk (offpath, hops) use of it."""

    nets: Nets
    target: str
    source: str | None
    reply: bool
    visits: list

    @property
    def family(self) -> int: ...

    def note(self, text: str) -> None: ...

    def holds_addr(self, ns: Ns, address: str) -> bool: ...

    def holding(self, address: str, everywhere: bool = False) -> list[tuple[Ns, str]]: ...

    def candidates(self, ns: Ns, exclude: str = "") -> list[Candidate]: ...

    def route_to(self, ns: str, cand: Candidate, current: dict | None) -> list[Fix]: ...

    def target_net(self) -> str: ...
