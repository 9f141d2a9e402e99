"""diagnose on what this host's kernel lacks: bridge VLAN filtering, matchall with gact, dummy.

Runs inside the stock-kernel guest. Each case builds its state by hand, asks `diagnose --json`
and holds it to the rule of every diagnosis: the printed fix heals both directions, or no fix
is printed (and then the cause is named, not `unknown`, where the kernel's state says it).
"""

from __future__ import annotations

import pytest

from .guest import run, vethwrap_json

pytestmark = pytest.mark.stock_kernel


def _pair_over_bridge(names) -> tuple[str, str, str]:
    a, b, hub = names(3)
    for ns in (a, b, hub):
        run("ip", "netns", "add", ns)
    run("ip", "-n", hub, "link", "add", "br0", "type", "bridge", "vlan_filtering", "1")
    run("ip", "-n", hub, "link", "set", "br0", "up")
    for ns, dev, port, cidr in ((a, "va", "pa", "10.0.0.1/24"), (b, "vb", "pb", "10.0.0.2/24")):
        run("ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", port, "netns",
            hub)
        run("ip", "-n", hub, "link", "set", port, "master", "br0", "up")
        run("ip", "-n", ns, "addr", "add", cidr, "dev", dev)
        run("ip", "-n", ns, "link", "set", dev, "up")
    return a, b, hub


def _both_ways(a: str, b: str) -> bool:
    return all(run("ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "2", "-i", "0.2", to,
                   check=False).returncode == 0 for ns, to in ((a, "10.0.0.2"), (b, "10.0.0.1")))


def _heals_or_names(a: str, b: str, want: str) -> dict:
    found = vethwrap_json("diagnose", a, "10.0.0.2", check=False)
    assert not found["reachable"] and found["cause"] == want, found
    if found["fix_script"]:
        run("sh", "-e", input="\n".join(found["fix_script"]) + "\n")
        assert _both_ways(a, b), found
    return found


@pytest.mark.parametrize("change", ["port-left-the-vlan", "no-pvid", "tagged-egress"])
def test_bridge_vlan_filtering(names, change):
    a, b, hub = _pair_over_bridge(names)
    assert _both_ways(a, b)
    if change == "port-left-the-vlan":
        run("bridge", "-n", hub, "vlan", "del", "dev", "pb", "vid", "1")
    elif change == "no-pvid":
        run("bridge", "-n", hub, "vlan", "add", "dev", "pa", "vid", "1", "untagged")
    else:
        run("bridge", "-n", hub, "vlan", "add", "dev", "pb", "vid", "1", "pvid")
    found = _heals_or_names(a, b, "bridge-port-vlan")
    assert found["fix_script"] and any("bridge -n" in line for line in found["fix_script"])


def test_matchall_gact_drop(names):
    a, b, _ = _pair_over_bridge(names)
    run("tc", "-n", b, "qdisc", "add", "dev", "vb", "clsact")
    run("tc", "-n", b, "filter", "add", "dev", "vb", "ingress", "matchall", "action", "drop")
    found = vethwrap_json("diagnose", a, "10.0.0.2", check=False)
    assert not found["reachable"] and found["cause"] in ("tc-drop", "kernel-drop"), found
    if found["fix_script"]:
        run("sh", "-e", input="\n".join(found["fix_script"]) + "\n")
        assert _both_ways(a, b), found


def test_tutorial_state_on_dummies_with_a_firewall(names):
    ns0, ns1 = names(2)
    for ns, dev, cidr in ((ns0, "d0", "10.0.0.1/24"), (ns1, "d1", "10.0.0.2/24")):
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "add", dev, "type", "dummy")
        run("ip", "-n", ns, "addr", "add", cidr, "dev", dev)
        run("ip", "-n", ns, "link", "set", dev, "up")
    run("ip", "-n", ns0, "link", "add", "veth0", "type", "veth", "peer", "name", "veth2",
        "netns", ns1)
    run("ip", "-n", ns0, "link", "set", "veth0", "up")
    run("ip", "-n", ns1, "link", "set", "veth2", "up")
    run("ip", "-n", ns0, "route", "replace", "10.0.0.0/24", "dev", "veth0")
    run("ip", "-n", ns1, "route", "replace", "10.0.0.0/24", "dev", "veth2")
    assert _both_ways(ns0, ns1)
    run("ip", "netns", "exec", ns1, "iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP")
    found = _heals_or_names(ns0, ns1, "firewall-drop")
    assert [c["cause"] for c in found["causes"]] == ["firewall-drop"], found
