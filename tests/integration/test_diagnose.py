"""diagnose on real namespaces: build each broken state, name the cause, apply the fix with sh -e.

Every namespace comes from the `netns` fixture and is deleted by exact name; nothing here
touches the root namespace (no address, route, sysctl or firewall rule there, no ping from it).
"""

from __future__ import annotations

import json
import subprocess
import time
from ipaddress import ip_address

import pytest
from conftest import ip
from inprocess import vethwrap

from veth_wrap.explain.diagnose import diagnose

pytestmark = pytest.mark.integration


def make(netns, label: str = "") -> str:
    """A namespace with lo up and reverse-path filtering off, so the host's default is moot."""
    ns = netns.make(label)
    ip("-n", ns, "link", "set", "dev", "lo", "up")
    sysctl(ns, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
           "net.ipv4.ip_forward=0")
    return ns


def sysctl(ns: str, *assignments: str) -> None:
    """Write sysctls inside one of our namespaces."""
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", *assignments], check=True)


def inside(ns: str, *argv: str) -> None:
    """Run a command (iptables, nft) inside one of our namespaces."""
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True)


def veth(a: str, ia: str, b: str, ib: str) -> None:
    """A veth pair from a (ia) to b (ib), both ends up."""
    ip("-n", a, "link", "add", "name", ia, "type", "veth", "peer", "name", ib, "netns", b)
    up(a, ia)
    up(b, ib)


def up(ns: str, *devs: str) -> None:
    """Set devices up."""
    for dev in devs:
        ip("-n", ns, "link", "set", "dev", dev, "up")


def addr(ns: str, dev: str, cidr: str) -> None:
    """Add an address."""
    ip("-n", ns, "addr", "add", cidr, "dev", dev)


def stub(ns: str, dev: str, cidr: str) -> None:
    """An interface with carrier holding an address: one end of a veth pair inside ns."""
    # a veth, not a dummy: some kernels (this CI's) have no dummy driver
    ip("-n", ns, "link", "add", "name", dev, "type", "veth", "peer", "name", dev + "p")
    addr(ns, dev, cidr)
    up(ns, dev, dev + "p")


def pings(ns: str, dest: str) -> bool:
    """True when dest answers from ns."""
    argv = ["ip", "netns", "exec", ns, "ping", "-c", "2", "-W", "1", "-i", "0.2", "-n", dest]
    # twice: a neighbour entry left FAILED by the broken state takes a retry to resolve
    return any(subprocess.run(argv, capture_output=True, check=False).returncode == 0
               for _ in range(2))


def check(ns: str, dest: str, cause: str, *fix_parts: str):
    """Diagnose, assert the cause and fix lines, apply the fix with sh -e, assert the ping."""
    result = diagnose(ns, ip_address(dest))
    assert not result.reachable
    assert result.cause is not None and result.cause.value == cause, result.to_json()
    script = "".join(line + "\n" for line in result.script)
    for part in fix_parts:
        assert part in script, script
    assert result.fixes, result.to_json()
    subprocess.run(["sh", "-e"], input=script, text=True, check=True, capture_output=True)
    assert pings(ns, dest), f"still no answer after:\n{script}"
    return result


def p2p(netns) -> tuple[str, str]:
    """A (va 10.0.0.1/24) <-> B (vb 10.0.0.2/24)."""
    a, b = make(netns, "a"), make(netns, "b")
    veth(a, "va", b, "vb")
    addr(a, "va", "10.0.0.1/24")
    addr(b, "vb", "10.0.0.2/24")
    return a, b


def test_tutorial_routes_leave_by_the_taps(unchanged, netns):
    ns0, ns1 = make(netns, "t0"), make(netns, "t1")
    for ns, tap, cidr in ((ns0, "tap0", "10.0.0.1/24"), (ns1, "tap1", "10.0.0.2/24")):
        ip("-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
        addr(ns, tap, cidr)
        up(ns, tap)
    veth(ns0, "veth0", ns1, "veth2")
    done = vethwrap("diagnose", ns0, "10.0.0.2", "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["cause"] == "route-wrong-device"
    assert data["fix_script"] == [f"ip -n {ns0} route change 10.0.0.0/24 dev veth0",
                                  f"ip -n {ns1} route change 10.0.0.0/24 dev veth2"]
    assert any("tap0" in line and "NO carrier" in line for line in data["evidence"])
    subprocess.run(["sh", "-e"], input="\n".join(data["fix_script"]) + "\n", text=True,
                   check=True)
    assert pings(ns0, "10.0.0.2") and pings(ns1, "10.0.0.1")
    again = vethwrap("diagnose", ns0, "10.0.0.2", "--verbose")
    assert again.returncode == 0 and "reachable" in again.stdout


def test_no_route(netns):
    a, b = p2p(netns)
    stub(b, "d0", "10.0.2.1/24")
    check(a, "10.0.2.1", "no-route", f"ip -n {a} route add 10.0.2.0/24 via 10.0.0.2 dev va")


def test_gateway_not_reachable(netns):
    a, b = p2p(netns)
    stub(b, "d0", "10.0.2.1/24")
    ip("-n", a, "route", "add", "10.0.2.0/24", "via", "10.0.0.99", "dev", "va")
    check(a, "10.0.2.1", "gateway-unreachable",
          f"ip -n {a} route change 10.0.2.0/24 via 10.0.0.2 dev va")


def test_local_end_down(netns):
    a, _ = p2p(netns)
    ip("-n", a, "link", "set", "dev", "va", "down")
    check(a, "10.0.0.2", "local-down", f"ip -n {a} link set dev va up")


def test_peer_end_down(netns):
    a, b = p2p(netns)
    ip("-n", b, "link", "set", "dev", "vb", "down")
    check(a, "10.0.0.2", "peer-down", f"ip -n {b} link set dev vb up")


def test_local_end_has_no_address(netns):
    a, b = p2p(netns)
    assert pings(b, "10.0.0.1")  # b now remembers 10.0.0.1 at va's MAC
    ip("-n", a, "addr", "flush", "dev", "va")
    check(a, "10.0.0.2", "local-no-address", f"ip -n {a} addr add 10.0.0.1/24 dev va")


def test_local_end_that_never_had_an_address_gets_no_invented_one(netns):
    a, b = make(netns, "a"), make(netns, "b")
    veth(a, "va", b, "vb")
    addr(b, "vb", "10.0.0.2/24")
    result = diagnose(a, ip_address("10.0.0.2"))
    assert result.cause is not None and result.cause.value == "local-no-address"
    assert not result.fixes and "nothing on the path says" in result.evidence[-1]


def test_destination_not_configured(netns):
    a, b = p2p(netns)
    # a host is never invented: the address was mistyped
    result = diagnose(a, ip_address("10.0.0.3"))
    assert result.cause is not None and result.cause.value == "dest-not-configured"
    assert not result.fixes and f"did you mean 10.0.0.2 ({b})?" in result.summary


# addresses no other lab uses: a second namespace holding the target would make it ambiguous
OFF_A, OFF_B = "10.231.7.1/24", "10.231.7.2"


def test_peer_in_another_namespace(netns):
    a, wrong, c = make(netns, "a"), make(netns, "w"), make(netns, "c")
    veth(a, "va", wrong, "vb")
    addr(a, "va", OFF_A)
    stub(c, "d0", OFF_B + "/24")
    veth(c, "cr", wrong, "rc")  # c is linked to the lab: moving vb there stays on it
    check(a, OFF_B, "peer-wrong-netns", f"ip -n {wrong} link set dev vb netns {c}",
          f"ip -n {c} route change 10.231.7.0/24 dev vb")


def test_peer_beside_an_unrelated_holder_prints_no_fix(netns):
    a, wrong, c = make(netns, "a"), make(netns, "w"), make(netns, "c")
    veth(a, "va", wrong, "vb")
    addr(a, "va", OFF_A)
    stub(c, "d0", OFF_B + "/24")  # nothing links c to a: another lab's, for all we know
    result = diagnose(a, ip_address(OFF_B))
    assert result.cause is not None and result.cause.value == "dest-not-configured"
    assert not result.fixes and any(c in line for line in result.evidence)


def test_peer_beside_two_holders_prints_no_fix(netns):
    a, wrong, c, d = (make(netns, x) for x in "awcd")
    veth(a, "va", wrong, "vb")
    addr(a, "va", OFF_A)
    stub(c, "d0", OFF_B + "/24")
    stub(d, "d0", OFF_B + "/24")
    result = diagnose(a, ip_address(OFF_B))
    assert result.cause is not None and result.cause.value == "dest-not-configured"
    assert not result.fixes and any(c in line and d in line for line in result.evidence)


def test_peer_in_no_named_namespace(netns):
    a, lost, c = make(netns, "a"), make(netns, "l"), make(netns, "c")
    veth(a, "va", lost, "vb")
    addr(a, "va", OFF_A)
    stub(c, "d0", OFF_B + "/24")
    for ns in (a, c):  # the marks say a and c are of one lab: recreating the pair stays in it
        ip("-n", ns, "link", "set", "dev", "lo", "alias", f"vethwrap/{netns.prefix}/netns/pair")
    holder = subprocess.Popen(["ip", "netns", "exec", lost, "sleep", "120"])
    try:
        time.sleep(0.2)
        ip("netns", "del", lost)  # unnamed now; the sleep keeps it (and vb) alive
        check(a, OFF_B, "peer-no-netns", f"ip -n {a} link del dev va")
    finally:
        holder.kill()
        holder.wait()


def bridged(netns) -> tuple[str, str, str]:
    """A (va) -- pa [br0 in hub] pb -- B (vb), on 10.0.0.0/24."""
    a, hub, b = make(netns, "a"), make(netns, "h"), make(netns, "b")
    ip("-n", hub, "link", "add", "name", "br0", "type", "bridge")
    up(hub, "br0")
    veth(a, "va", hub, "pa")
    veth(b, "vb", hub, "pb")
    for port in ("pa", "pb"):
        ip("-n", hub, "link", "set", "dev", port, "master", "br0")
    addr(a, "va", "10.0.0.1/24")
    addr(b, "vb", "10.0.0.2/24")
    return a, hub, b


@pytest.mark.parametrize("port", ["pb", "pa"])
def test_bridge_port_not_attached(netns, port):
    a, hub, _ = bridged(netns)
    ip("-n", hub, "link", "set", "dev", port, "nomaster")
    check(a, "10.0.0.2", "bridge-port-detached", f"ip -n {hub} link set dev {port} master br0")


def test_bridge_port_down(netns):
    a, hub, _ = bridged(netns)
    ip("-n", hub, "link", "set", "dev", "pb", "down")
    check(a, "10.0.0.2", "bridge-port-down", f"ip -n {hub} link set dev pb up")


def test_bridge_down(netns):
    a, hub, _ = bridged(netns)
    ip("-n", hub, "link", "set", "dev", "br0", "down")
    check(a, "10.0.0.2", "bridge-down", f"ip -n {hub} link set dev br0 up")


def chain(netns) -> tuple[str, str, str]:
    """A (10.0.1.1) -- R (10.0.1.2 | 10.0.2.1, forwarding) -- B (10.0.2.2), routes both ways."""
    a, r, b = make(netns, "a"), make(netns, "r"), make(netns, "b")
    veth(a, "va", r, "ra")
    veth(r, "rb", b, "vb")
    addr(a, "va", "10.0.1.1/24")
    addr(r, "ra", "10.0.1.2/24")
    addr(r, "rb", "10.0.2.1/24")
    addr(b, "vb", "10.0.2.2/24")
    ip("-n", a, "route", "add", "10.0.2.0/24", "via", "10.0.1.2")
    ip("-n", b, "route", "add", "10.0.1.0/24", "via", "10.0.2.1")
    sysctl(r, "net.ipv4.ip_forward=1")
    return a, r, b


def test_middle_namespace_does_not_forward(netns):
    a, r, _ = chain(netns)
    sysctl(r, "net.ipv4.ip_forward=0")
    check(a, "10.0.2.2", "forwarding-disabled", f"ip netns exec {r} sysctl -w",
          "net.ipv4.ip_forward=1")


def test_return_route_missing(netns):
    a, _, b = chain(netns)
    ip("-n", b, "route", "del", "10.0.1.0/24")
    check(a, "10.0.2.2", "no-return-route", f"ip -n {b} route add 10.0.1.0/24 via 10.0.2.1 dev vb")


def test_rp_filter_drops_asymmetric_replies(netns):
    a, b = make(netns, "a"), make(netns, "b")
    veth(a, "a1", b, "b1")
    veth(a, "a2", b, "b2")
    for ns, dev, cidr in ((a, "a1", "10.0.1.1/24"), (a, "a2", "10.0.2.1/24"),
                          (b, "b1", "10.0.1.2/24"), (b, "b2", "10.0.2.2/24")):
        addr(ns, dev, cidr)
    stub(b, "d0", "10.0.9.1/24")
    ip("-n", a, "route", "add", "10.0.9.0/24", "via", "10.0.1.2")
    ip("-n", b, "route", "add", "10.0.1.1/32", "via", "10.0.2.1", "dev", "b2")
    sysctl(a, "net.ipv4.conf.all.rp_filter=1")
    result = check(a, "10.0.9.1", "rp-filter", f"ip netns exec {a} sysctl -w "
                   "net.ipv4.conf.all.rp_filter=2")
    assert any("a2" in line and "a1" in line for line in result.evidence)


def test_iptables_rule_drops_in_destination(netns):
    a, b = p2p(netns)
    inside(b, "iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP")
    result = check(a, "10.0.0.2", "firewall-drop",
                   f"ip netns exec {b} iptables -t filter -D INPUT -p icmp -j DROP")
    assert any("counter rose" in line for line in result.evidence)


def test_nftables_forward_policy_drops_in_router(netns):
    a, r, _ = chain(netns)
    inside(r, "nft", "add", "table", "inet", "lab")
    inside(r, "nft", "add", "chain", "inet", "lab", "fw", "{ type filter hook forward "
           "priority 0; policy drop; }")
    check(a, "10.0.2.2", "firewall-drop",
          f"ip netns exec {r} nft insert rule inet lab fw ip saddr 10.0.1.1 ip daddr 10.0.2.2 "
          "accept", "ip saddr 10.0.2.2 ip daddr 10.0.1.1 accept")


def test_nftables_rule_without_counter_drops_replies(netns):
    a, b = p2p(netns)
    inside(b, "nft", "add", "table", "ip", "lab")
    inside(b, "nft", "add", "chain", "ip", "lab", "out", "{ type filter hook output "
           "priority 0; policy accept; }")
    inside(b, "nft", "add", "rule", "ip", "lab", "out", "icmp", "type", "echo-reply", "drop")
    check(a, "10.0.0.2", "firewall-drop", f"ip netns exec {b} nft delete rule ip lab out handle")


def br_netfilter_on(ns: str) -> bool:
    """True when br_netfilter hands ns's bridged traffic to iptables."""
    done = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n",
                           "net.bridge.bridge-nf-call-iptables"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() == "1"


def test_bridge_with_br_netfilter_and_forward_drop(netns):
    a, hub, _ = bridged(netns)
    inside(hub, "iptables", "-P", "FORWARD", "DROP")
    if not br_netfilter_on(hub):  # without br_netfilter the policy never sees bridged frames
        assert diagnose(a, ip_address("10.0.0.2")).reachable
        return
    result = check(a, "10.0.0.2", "br-netfilter-drop",
                   f"ip netns exec {hub} iptables -t filter -I FORWARD 1 -p icmp -s 10.0.0.1 "
                   "-d 10.0.0.2 -j ACCEPT")
    assert any("bridge-nf-call-iptables = 1" in line for line in result.evidence)


def test_no_carrier_when_only_a_lone_tap_leads_there(netns):
    a, b = make(netns, "a"), make(netns, "b")
    stub(b, "d0", "10.0.7.2/24")  # the destination exists, but nothing joins a to b
    ip("-n", a, "tuntap", "add", "dev", "tap0", "mode", "tap")
    addr(a, "tap0", "10.0.7.1/24")
    up(a, "tap0")
    result = diagnose(a, ip_address("10.0.7.2"))
    assert not result.reachable and result.cause.value == "no-carrier", result.to_json()
    assert "nothing is connected" in result.summary


def test_unknown_names_what_was_checked(netns):
    # the path is sound, but a tc filter on the destination's end steals every packet
    a, b = p2p(netns)
    ip("netns", "exec", b, "tc", "qdisc", "add", "dev", "vb", "clsact")
    ip("netns", "exec", b, "tc", "filter", "add", "dev", "vb", "ingress", "pref", "3", "bpf",
       "da", "bytecode", "1,6 0 0 4")
    result = diagnose(a, ip_address("10.0.0.2"))
    # nothing read names it; the kernel's drop reason, when it was watched, is the last word
    assert not result.reachable and result.cause.value in ("unknown", "kernel-drop"), \
        result.to_json()
    assert result.checked and not result.fixes


def _vethwrap(*args: str) -> None:
    done = vethwrap(*args)
    assert done.returncode == 0, done.stderr


def _impairments(ns: str, ifname: str) -> dict:
    shown = json.loads(vethwrap("show", ns, "--json").stdout)
    spaces = {n["name"]: n for lab in shown["labs"] for n in lab["namespaces"]}
    return next(i for i in spaces[ns]["interfaces"] if i["name"] == ifname)["impairments"]


def test_link_with_full_loss_is_named_and_cleared(netns, unchanged):
    a, b = netns.name(), netns.name()
    _vethwrap("create", a, b, "--loss", "100%", "--no-verify")
    result = check(a, "10.0.0.2", "link-impaired", f"tc -n {a} ", f"tc -n {b} ")
    assert "loss 100%" in result.summary and f"vw-{b} in {a}" in result.summary
    assert all(fix[:3] in (["tc", "-n", a], ["tc", "-n", b]) for fix in result.fixes)
    # the fix left nothing behind that still drops
    assert diagnose(a, ip_address("10.0.0.2")).reachable
    _vethwrap("destroy", a, b)


PROBE_LINES = ("counters during a test ping", "the kernel's drop reasons")


def test_loss_in_the_middle_of_a_chain_is_named_and_the_rate_kept(netns, unchanged):
    a, r, c = netns.name(), netns.name(), netns.name()
    _vethwrap("create", a, r, c, "-t", "chain")
    _vethwrap("link", "set", r, f"vw-{c}", "--loss", "100%", "--rate", "10mbit")
    result = check(a, "10.0.0.6", "link-impaired", f"tc -n {r} ")
    own = [e for e in result.evidence if not e.startswith(PROBE_LINES)]  # less the probe's
    assert f"vw-{c} in {r}" in result.summary and len(own) == 2, result.to_json()
    # netem's loss or the loss filter came off; the rate stays, on tbf
    assert _impairments(r, f"vw-{c}") == {"qdisc": "tbf", "rate": "10mbit"}
    _vethwrap("destroy", a, r, c)
