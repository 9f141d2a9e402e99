"""diagnose on labs built by hand, where a rule written from vethwrap's own labs would be wrong.

Each test builds the state on real namespaces and asserts the right cause, or no fix at all:
the weak host model (the MAC that answers ARP is the receiving interface's, not the one of the
device holding the address), an end moved into a third namespace, an address nobody holds.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import ip
from inprocess import vethwrap
from test_diagnose import addr, inside, make, pings, stub, up, veth

pytestmark = pytest.mark.integration


def tutorial(netns, holder: str) -> tuple[str, str]:
    """The tutorial's state: tap0/tap1 (or a veth stand-in) hold the addresses, veth0/veth2
    have none, and the routes were changed to leave by the veths: ping works."""
    ns0, ns1 = make(netns, "t0"), make(netns, "t1")
    for ns, dev, cidr in ((ns0, "tap0", "10.0.0.1/24"), (ns1, "tap1", "10.0.0.2/24")):
        if holder == "tap":
            ip("-n", ns, "tuntap", "add", "dev", dev, "mode", "tap")
            addr(ns, dev, cidr)
            up(ns, dev)
        else:
            stub(ns, dev, cidr)
    veth(ns0, "veth0", ns1, "veth2")
    ip("-n", ns0, "route", "replace", "10.0.0.0/24", "dev", "veth0")
    ip("-n", ns1, "route", "replace", "10.0.0.0/24", "dev", "veth2")
    assert pings(ns0, "10.0.0.2") and pings(ns1, "10.0.0.1")
    return ns0, ns1


def diagnosis(ns: str, dest: str, *extra: str) -> tuple[int, dict]:
    done = vethwrap("diagnose", ns, dest, "--json", *extra)
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("holder", ["tap", "veth-stub"])
def test_tutorial_state_with_a_firewall_names_the_firewall(netns, holder):
    ns0, ns1 = tutorial(netns, holder)
    inside(ns1, "iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP")
    code, data = diagnosis(ns0, "10.0.0.2")
    assert code == 1 and data["cause"] == "firewall-drop", data
    assert [c["cause"] for c in data["causes"]] == ["firewall-drop"], data
    assert data["fix_script"] == [f"ip netns exec {ns1} iptables -t filter -D INPUT -p icmp "
                                  "-j DROP"]
    healed = vethwrap("diagnose", ns0, "10.0.0.2", "--fix")
    assert healed.returncode == 0 and "healed: applied" in healed.stdout, healed.stdout
    assert pings(ns0, "10.0.0.2") and pings(ns1, "10.0.0.1")


def test_tutorial_state_a_wrong_neighbour_is_the_far_ends_mac_that_is_wrong(netns):
    """A static entry with tap1's MAC is wrong: the answer comes from veth2, not tap1."""
    ns0, ns1 = tutorial(netns, "tap")
    tap1 = json.loads(ip("-n", ns1, "-j", "link", "show", "dev", "tap1").stdout)[0]["address"]
    ip("-n", ns0, "neigh", "replace", "10.0.0.2", "lladdr", tap1, "dev", "veth0", "nud",
       "permanent")
    code, data = diagnosis(ns0, "10.0.0.2")
    assert code == 1 and data["cause"] == "neighbour-wrong-mac", data
    veth2 = json.loads(ip("-n", ns1, "-j", "link", "show", "dev", "veth2").stdout)[0]["address"]
    assert data["fix_script"] == [f"ip -n {ns0} neigh replace 10.0.0.2 lladdr {veth2} dev "
                                  "veth0 nud permanent"]
    subprocess.run(["sh", "-e"], input=data["fix_script"][0] + "\n", text=True, check=True)
    assert pings(ns0, "10.0.0.2")


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside-a-holder"])
def test_end_moved_into_a_third_namespace_gets_no_fix(netns, beside):
    a, b, c = make(netns, "a"), make(netns, "b"), make(netns, "c")
    veth(a, "va", b, "vb")
    addr(a, "va", "10.0.0.1/24")
    addr(b, "vb", "10.0.0.2/24")
    if beside:  # another lab holding the address at that moment
        d, e = make(netns, "d"), make(netns, "e")
        veth(d, "xd", e, "xe")
        addr(d, "xd", "10.0.0.1/24")
        addr(e, "xe", "10.0.0.2/24")
    ip("-n", b, "link", "set", "dev", "vb", "netns", c)
    code, data = diagnosis(a, "10.0.0.2")
    assert code == 1 and data["cause"] == "dest-not-configured", data
    assert not data["fix_script"], data
    assert any(f"vb in {c}" in line for line in data["evidence"]), data
    done = vethwrap("diagnose", a, "10.0.0.2", "--fix")
    assert done.returncode == 1 and "nothing applied" in done.stderr
    assert ip("-n", c, "-j", "addr", "show", "dev", "vb").stdout.count("10.0.0.2") == 0


def test_address_nobody_holds_names_what_is_there_and_changes_nothing(netns):
    a, b = make(netns, "a"), make(netns, "b")
    veth(a, "va", b, "vb")
    addr(a, "va", "10.0.0.1/24")
    addr(b, "vb", "10.0.0.2/24")
    before = ip("-n", b, "-4", "-j", "addr").stdout  # (IPv6 link-locals come late)
    done = vethwrap("diagnose", a, "10.0.0.99", "--fix")
    assert done.returncode == 1, done.stdout
    assert f"did you mean 10.0.0.2 ({b})?" in done.stdout.replace("\n", " "), done.stdout
    assert "nothing applied" in done.stderr
    assert ip("-n", b, "-4", "-j", "addr").stdout == before
    code, data = diagnosis(a, "10.0.0.99")
    assert data["cause"] == "dest-not-configured" and not data["fix_script"], data


def test_address_nobody_holds_in_the_tutorial_state_names_the_holder_of_the_network(netns):
    ns0, ns1 = tutorial(netns, "tap")  # veth2 has no address: ns1 answers for tap1's
    done = vethwrap("diagnose", ns0, "10.0.0.99", "--fix")
    assert done.returncode == 1 and "nothing applied" in done.stderr, done.stdout
    assert f"did you mean 10.0.0.2 ({ns1})?" in done.stdout.replace("\n", " "), done.stdout
    assert pings(ns0, "10.0.0.2")
