"""Uplinks: pasta (Debian's passt), a user-mode gateway, joining a namespace to the host.

pasta runs in the host's namespace and gives the lab namespace a tap interface, UPLINK,
with the host's address and default route; what the namespace sends out is carried by
pasta's own sockets on the host. Nothing on the host changes: no forwarding, no firewall
rule, no address; only the ports asked for are bound on the host, forwarded into the lab.
pasta is started through env with the lab's identity in its environment; destroy finds it
by that and ends it (pasta does not always end by itself when its namespace goes).
"""

from __future__ import annotations

from veth_wrap.compile.bridge import mark
from veth_wrap.model.facts import NetnsState
from veth_wrap.model.names import Role
from veth_wrap.model.procfacts import ENV_LAB, ENV_NETNS, ENV_SERVICE, UPLINK_SERVICE
from veth_wrap.model.topology import Lab, Uplink
from veth_wrap.steps import Kind, Op, Plan

UPLINK = "vwuplink"  # the tap pasta makes in the namespace


def add_gateways(plan: Plan, lab: Lab, facts: dict[str, NetnsState]) -> None:
    """A pasta for each uplink whose namespace has none yet (its tap says so)."""
    for uplink in lab.uplinks:
        state = facts.get(uplink.netns)
        if state is not None and UPLINK in state.links:
            continue
        plan.add([Op(Kind.START_GATEWAY, identity(lab, uplink.netns) + ("pasta",)
                     + pasta_words(uplink), target=uplink.netns, netns=uplink.netns,
                     creates=(("link", uplink.netns, UPLINK),),
                     gone_with=frozenset({("netns", uplink.netns)}))], program="env",
                 comment=f"uplink of {uplink.netns} to the host's networks (NAT by pasta)")
        # marked, the tap is found from the kernel: destroy deletes it, and pasta ends
        plan.add([Op(Kind.SET_LINK, ("link", "set", UPLINK, "alias", mark(lab, Role.UPLINK)),
                     target=UPLINK)],
                 netns=uplink.netns, comment=f"mark the uplink of {uplink.netns}")


def uplink_names(lab: Lab, ns: str) -> set[str]:
    """The uplink tap a namespace of lab has, as a set (empty without one)."""
    return {UPLINK} if any(u.netns == ns for u in lab.uplinks) else set()


def identity(lab: Lab, ns: str) -> tuple[str, ...]:
    """env's words that name pasta as the lab's: destroy finds it by them (kernel/procs)."""
    return (f"{ENV_SERVICE}={UPLINK_SERVICE}", f"{ENV_LAB}={lab.name}", f"{ENV_NETNS}={ns}")


def pasta_words(uplink: Uplink) -> tuple[str, ...]:
    """pasta's options after its name: quiet, in the background, IPv4, only the forwards.

    --runas 0: pasta would drop to nobody, who cannot enter a namespace root made;
    --no-map-gw: the gateway's address is the real gateway, not the host itself.
    """
    tcp = ",".join(f"{host}:{port}" for host, port in uplink.forwards) or "none"
    return ("--quiet", "--runas", "0", "--ipv4-only", "--config-net", "--ns-ifname", UPLINK,
            "--no-map-gw", "--tcp-ports", tcp, "--udp-ports", "none", "--tcp-ns", "none",
            "--udp-ns", "none", "--netns", uplink.netns)
