"""A table of broken states on real namespaces: each row builds one, names the cause diagnose
must give, pastes the printed fix with `sh -e`, pings both ways, then rebuilds it and heals it
with `diagnose --fix`. Every row runs again beside an unrelated lab holding the same addresses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import pytest
from conftest import Namespaces, ip
from test_diagnose import addr, bridged, inside, make, pings, stub, sysctl, veth

pytestmark = pytest.mark.integration
A4, B4, A6, B6 = "10.0.0.1", "10.0.0.2", "fd00:77::1", "fd00:77::2"


@dataclass
class Lab:
    """The namespaces of a row: the source, the destination's and any in between."""

    a: str
    b: str
    mid: str = ""
    dest: str = B4
    back: str = A4


def pair(netns, v6: bool = False) -> Lab:
    """a (va) <-> b (vb) on 10.0.0.0/24 (and fd00:77::/64)."""
    a, b = make(netns, "a"), make(netns, "b")
    veth(a, "va", b, "vb")
    addr(a, "va", "10.0.0.1/24")
    addr(b, "vb", "10.0.0.2/24")
    if v6:
        for ns, dev, cidr in ((a, "va", f"{A6}/64"), (b, "vb", f"{B6}/64")):
            ip("-n", ns, "addr", "add", cidr, "dev", dev, "nodad")
        return Lab(a, b, dest=B6, back=A6)
    return Lab(a, b)


def bridge(netns) -> Lab:
    """a (va) -- pa [br0 in h] pb -- b (vb)."""
    a, h, b = bridged(netns)
    return Lab(a, b, h)


def chain(netns) -> Lab:
    """a (10.0.1.1) - r - b (10.0.2.2), r forwarding, routes both ways."""
    a, r, b = make(netns, "a"), make(netns, "r"), make(netns, "b")
    veth(a, "va", r, "ra")
    veth(r, "rb", b, "vb")
    for ns, dev, cidr in ((a, "va", "10.0.1.1/24"), (r, "ra", "10.0.1.254/24"),
                          (r, "rb", "10.0.2.254/24"), (b, "vb", "10.0.2.2/24")):
        addr(ns, dev, cidr)
    sysctl(r, "net.ipv4.ip_forward=1")
    ip("-n", a, "route", "add", "10.0.2.0/24", "via", "10.0.1.254")
    ip("-n", b, "route", "add", "10.0.1.0/24", "via", "10.0.2.254")
    return Lab(a, b, r, dest="10.0.2.2", back="10.0.1.1")


def _ipt(ns: str, *words: str) -> None:
    inside(ns, "iptables", *words)


def _nft(ns: str, script: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True,
                   check=True)  # one statement a line: this nft takes no ';' before '}'


def _arp_ignore_other_iface(netns) -> Lab:
    lab = pair(netns)
    stub(lab.b, "d0", "10.0.5.1/24")
    ip("-n", lab.a, "route", "add", "10.0.5.0/24", "dev", "va")
    ip("-n", lab.b, "route", "add", "10.0.0.0/24", "dev", "vb", "src", "10.0.5.1", "metric",
       "5")
    sysctl(lab.b, "net.ipv4.conf.all.arp_ignore=1")
    lab.dest = "10.0.5.1"
    return lab


def _tc(ns: str, *words: str) -> None:
    subprocess.run(["tc", "-n", ns, *words], check=True, capture_output=True)


def _tc_drop_filter(lab: Lab) -> None:
    """A classic BPF filter in direct-action mode that shoots everything arriving on vb."""
    _tc(lab.b, "qdisc", "add", "dev", "vb", "clsact")
    _tc(lab.b, "filter", "add", "dev", "vb", "ingress", "bpf", "da", "bytecode", "1,6 0 0 2,")


def _arp_announce(netns) -> Lab:
    """a sends from an address of another interface; b answers ARP only within vb's subnet."""
    lab = pair(netns)
    stub(lab.a, "d0", "10.0.5.1/24")
    ip("-n", lab.a, "route", "replace", "10.0.0.0/24", "dev", "va", "src", "10.0.5.1")
    ip("-n", lab.b, "route", "add", "10.0.5.0/24", "dev", "vb")
    sysctl(lab.b, "net.ipv4.conf.all.arp_ignore=2")
    lab.back = "10.0.5.1"
    return lab


def _loose_rp(netns) -> Lab:
    """a sends from 10.0.9.1 (on lo); the router filters loosely and has no route back."""
    lab = chain(netns)
    addr(lab.a, "lo", "10.0.9.1/32")
    ip("-n", lab.a, "route", "replace", "10.0.2.0/24", "via", "10.0.1.254", "src", "10.0.9.1")
    ip("-n", lab.b, "route", "add", "default", "via", "10.0.2.254")
    sysctl(lab.mid, "net.ipv4.conf.all.rp_filter=2")
    lab.back = "10.0.9.1"
    return lab


def _stp_on(lab: Lab) -> None:
    """STP with the longest forward delay, and pb joining again: it sits in listening."""
    ip("-n", lab.mid, "link", "set", "dev", "br0", "type", "bridge", "stp_state", "1",
       "forward_delay", "3000")
    ip("-n", lab.mid, "link", "set", "dev", "pb", "nomaster")
    ip("-n", lab.mid, "link", "set", "dev", "pb", "master", "br0")


def _do(base: Callable, *changes: Callable) -> Callable:
    def build(netns) -> Lab:
        lab = base(netns)
        for change in changes:
            change(lab)
        return lab
    return build


R = [  # (id, builder, first cause, more causes expected, a fix is printed)
    ("blackhole", _do(pair, lambda x: ip("-n", x.a, "route", "add", "blackhole", B4)),
     "route-blackhole", (), True),
    ("prohibit-route", _do(pair, lambda x: ip("-n", x.a, "route", "add", "prohibit",
                                              "10.0.0.0/25")), "route-prohibit", (), True),
    ("unreachable-route", _do(pair, lambda x: ip("-n", x.a, "route", "add", "unreachable",
                                                 B4, "table", "main")),
     "route-unreachable", (), True),
    ("prohibit-rule", _do(pair, lambda x: ip("-n", x.a, "rule", "add", "pref", "100", "to", B4,
                                             "prohibit")), "policy-rule-blocks", (), True),
    ("blackhole-rule", _do(pair, lambda x: ip("-n", x.a, "rule", "add", "pref", "90", "to",
                                              "10.0.0.0/24", "blackhole")),
     "policy-rule-blocks", (), True),
    ("reply-blackhole", _do(pair, lambda x: ip("-n", x.b, "route", "add", "blackhole", A4)),
     "route-blackhole", (), True),
    ("reply-rule-from", _do(pair, lambda x: ip("-n", x.b, "rule", "add", "pref", "50", "from",
                                               B4, "to", A4, "unreachable")),
     "policy-rule-blocks", (), True),
    ("two-at-once", _do(pair, lambda x: ip("-n", x.a, "route", "add", "blackhole", B4),
                        lambda x: ip("-n", x.b, "route", "add", "prohibit", A4)),
     "route-blackhole", ("route-prohibit",), True),
    ("rule-and-route", _do(pair, lambda x: ip("-n", x.a, "rule", "add", "pref", "7", "to", B4,
                                              "prohibit"),
                           lambda x: ip("-n", x.a, "route", "add", "blackhole", B4)),
     "policy-rule-blocks", ("route-blackhole",), True),
    ("echo-ignore", _do(pair, lambda x: sysctl(x.b, "net.ipv4.icmp_echo_ignore_all=1")),
     "icmp-echo-ignored", (), True),
    ("noarp-near", _do(pair, lambda x: ip("-n", x.a, "link", "set", "dev", "va", "arp", "off")),
     "noarp", (), True),
    ("noarp-far", _do(pair, lambda x: ip("-n", x.b, "link", "set", "dev", "vb", "arp", "off")),
     "noarp", (), True),
    ("wrong-static-neighbour", _do(pair, lambda x: ip("-n", x.a, "neigh", "add", B4, "lladdr",
                                                      "02:00:00:00:00:99", "dev", "va", "nud",
                                                      "permanent")),
     "neighbour-wrong-mac", (), True),
    ("arp-ignore-8", _do(pair, lambda x: sysctl(x.b, "net.ipv4.conf.all.arp_ignore=8")),
     "arp-ignore", (), True),
    ("arp-ignore-1-other-iface", _arp_ignore_other_iface, "arp-ignore", (), True),
    ("iptables-input", _do(pair, lambda x: _ipt(x.b, "-A", "INPUT", "-p", "icmp", "-j", "DROP")),
     "firewall-drop", (), True),
    ("iptables-output-replies", _do(pair, lambda x: _ipt(x.b, "-A", "OUTPUT", "-d", A4, "-j",
                                                         "DROP")), "firewall-drop", (), True),
    ("nft-input", _do(pair, lambda x: _nft(x.b, "table ip t {\n chain i {\n  type filter hook "
                                                "input priority 0\n  ip protocol icmp counter "
                                                "drop\n }\n}\n")),
     "firewall-drop", (), True),
    ("local-down", _do(pair, lambda x: ip("-n", x.a, "link", "set", "dev", "va", "down")),
     "local-down", (), True),
    ("peer-down", _do(pair, lambda x: ip("-n", x.b, "link", "set", "dev", "vb", "down")),
     "peer-down", (), True),
    ("bridge-stp-listening", _do(bridge, _stp_on), "bridge-port-state", (), True),
    ("bridge-port-left-listening", _do(bridge, _stp_on, lambda x: ip(
        "-n", x.mid, "link", "set", "dev", "br0", "type", "bridge", "stp_state", "0")),
     "bridge-port-state", (), True),
    ("bridge-port-detached", _do(bridge, lambda x: ip("-n", x.mid, "link", "set", "dev", "pb",
                                                      "nomaster")),
     "bridge-port-detached", (), True),
    ("bridge-ports-isolated", _do(bridge, lambda x: [
        subprocess.run(["bridge", "-n", x.mid, "link", "set", "dev", p, "isolated", "on"],
                       check=True) for p in ("pa", "pb")]), "bridge-port-flag", (), True),
    ("bridge-port-floods-nothing", _do(bridge, lambda x: subprocess.run(
        ["bridge", "-n", x.mid, "link", "set", "dev", "pb", "learning", "off", "flood", "off",
         "bcast_flood", "off"], check=True)), "bridge-port-flag", (), True),
    ("bridge-noarp-far", _do(bridge, lambda x: ip("-n", x.b, "link", "set", "dev", "vb", "arp",
                                                  "off")), "noarp", (), True),
    ("chain-forwarding-off", _do(chain, lambda x: sysctl(x.mid, "net.ipv4.ip_forward=0")),
     "forwarding-disabled", (), True),
    ("chain-router-blackhole", _do(chain, lambda x: ip("-n", x.mid, "route", "add", "blackhole",
                                                       "10.0.2.2")), "route-blackhole", (), True),
    ("chain-router-reply-rule", _do(chain, lambda x: ip("-n", x.mid, "rule", "add", "pref", "3",
                                                        "to", "10.0.1.1", "prohibit")),
     "policy-rule-blocks", (), True),
    ("chain-no-return-route", _do(chain, lambda x: ip("-n", x.b, "route", "del",
                                                      "10.0.1.0/24")), "no-return-route", (),
     True),
    ("chain-two-routers-causes", _do(chain, lambda x: ip("-n", x.a, "route", "add", "prohibit",
                                                         "10.0.2.2"),
                                     lambda x: sysctl(x.mid, "net.ipv4.ip_forward=0")),
     "route-prohibit", ("forwarding-disabled",), True),
    ("ipv6-blackhole", _do(lambda n: pair(n, True),
                           lambda x: ip("-n", x.a, "-6", "route", "add", "blackhole", B6)),
     "route-blackhole", (), True),
    ("ipv6-rule", _do(lambda n: pair(n, True),
                      lambda x: ip("-n", x.a, "-6", "rule", "add", "pref", "20", "to", B6,
                                   "prohibit")), "policy-rule-blocks", (), True),
    ("ipv6-echo-ignore", _do(lambda n: pair(n, True),
                             lambda x: sysctl(x.b, "net.ipv6.icmp.echo_ignore_all=1")),
     "icmp-echo-ignored", (), True),
    ("ipv6-reply-unreachable", _do(lambda n: pair(n, True),
                                   lambda x: ip("-n", x.b, "-6", "route", "add", "unreachable",
                                                A6)), "route-unreachable", (), True),
    ("ipv6-disabled-far", _do(lambda n: pair(n, True),
                              lambda x: sysctl(x.b, "net.ipv6.conf.vb.disable_ipv6=1")),
     "ipv6-disabled", (), True),
    ("source-is-local-at-dest", _do(pair, lambda x: stub(x.b, "d1", f"{A4}/32")),
     "source-is-local", (), True),
    ("arp-announce-other-source", _arp_announce, "arp-announce", (), True),
    ("chain-loose-rp-filter-no-route-back", _loose_rp, "rp-filter", ("no-return-route",), True),
    ("tc-bpf-filter-drops-ingress", _do(pair, _tc_drop_filter), "tc-drop", (), True),
    ("tc-pfifo-limit-0", _do(pair, lambda x: _tc(x.a, "qdisc", "add", "dev", "va", "root",
                                                 "pfifo", "limit", "0")), "tc-drop", (), True),
    ("mtu-too-small-far", _do(pair, lambda x: ip("-n", x.b, "link", "set", "dev", "vb", "mtu",
                                                 "68")), "mtu-too-small", (), True),
    ("xfrm-policy-blocks", _do(pair, lambda x: ip(
        "-n", x.b, "xfrm", "policy", "add", "dir", "in", "src", f"{A4}/32", "dst", f"{B4}/32",
        "action", "block")), "xfrm-policy-blocks", (), True),
    ("xfrm-policy-without-state", _do(pair, lambda x: ip(
        "-n", x.a, "xfrm", "policy", "add", "dir", "out", "src", f"{A4}/32", "dst", f"{B4}/32",
        "tmpl", "proto", "esp", "mode", "transport")), "xfrm-no-state", (), False),
    ("nft-netdev-ingress", _do(pair, lambda x: _nft(x.b, "table netdev t {\n chain i {\n  type "
                                                         "filter hook ingress device vb priority 0"
                                                         "\n  counter drop\n }\n}\n")),
     "firewall-drop", (), True),
    ("iptables-legacy-raw-prerouting", _do(pair, lambda x: inside(
        x.b, "iptables-legacy", "-t", "raw", "-A", "PREROUTING", "-p", "icmp", "-j", "DROP")),
     "firewall-drop", (), True),
    ("nft-ip6-input-policy-drop", _do(lambda n: pair(n, True), lambda x: _nft(
        x.b, "table ip6 t {\n chain i {\n  type filter hook input priority 0\n  policy drop\n"
             " }\n}\n")), "firewall-drop", (), True),
    ("nobody-holds-it-on-a-bridge", _do(bridge, lambda x: setattr(x, "dest", "10.0.0.77")),
     "dest-not-configured", (), False),
]


def decoy(netns) -> None:
    """An unrelated lab holding the same addresses (and no route between it and the rows)."""
    c, d = netns.make("dc"), netns.make("dd")
    veth(c, "xa", d, "xb")
    for ns, dev, v4, v6 in ((c, "xa", "10.0.0.1/24", f"{A6}/64"),
                            (d, "xb", "10.0.0.2/24", f"{B6}/64")):
        addr(ns, dev, v4)
        ip("-n", ns, "addr", "add", v6, "dev", dev, "nodad")
    for ns, dev, v4 in ((c, "xa", "10.0.1.1/24"), (d, "xb", "10.0.2.2/24"), (d, "xb",
                                                                               "10.0.5.1/24")):
        addr(ns, dev, v4)


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (the `cli` fixture's way), callable from worker threads."""
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "veth_wrap", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def diagnosis(lab: Lab, *extra: str) -> tuple[int, dict]:
    done = cli("diagnose", lab.a, lab.dest, "--json", *extra)
    return done.returncode, json.loads(done.stdout)


def both_ways(lab: Lab) -> bool:
    """Pings there and back (twice each: a neighbour entry left FAILED retries meanwhile)."""
    return all(pings(ns, to) or pings(ns, to) for ns, to in ((lab.a, lab.dest),
                                                             (lab.b, lab.back)))


def drop(netns: Namespaces, since: int) -> None:
    """Delete the namespaces handed out from index `since` on (a healed lab), by exact name."""
    for name in netns.names[since:]:
        ip("netns", "del", name, check=False)


def check_row(row: tuple, beside: bool, netns: Namespaces) -> None:
    """Build the row's state, check the diagnosis, paste its fix, then heal a fresh copy with
    --fix (the pasted-into copy deleted first, so no healed twin stands beside it)."""
    _, build, cause, more, fixable = row
    if beside:
        decoy(netns)
    first = len(netns.names)
    lab = build(netns)
    code, data = diagnosis(lab)
    DECIDED[(row[0], beside)] = [(c["cause"], c["decided_by"]) for c in data.get("causes", [])]
    assert code == 1 and data["cause"] == cause, data
    causes = [c["cause"] for c in data["causes"]]
    assert causes[1:1 + len(more)] == list(more) or set(more) <= set(causes), causes
    assert all(c["evidence"] for c in data["causes"]) and data["processes"] > 0
    if not fixable:
        assert not data["fix_script"], data
        if cause == "unknown":  # what it checked, and where the counters say the packets stop
            assert data["checked"] and "the counters say where" in data["summary"], data
        return
    script = "".join(line + "\n" for line in data["fix_script"])
    subprocess.run(["sh", "-e"], input=script, text=True, check=True, capture_output=True)
    assert both_ways(lab), script
    drop(netns, first)
    lab = build(netns)
    healed = cli("diagnose", lab.a, lab.dest, "--fix")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "healed: applied" in healed.stdout
    assert both_ways(lab)


WORKERS = int(os.environ.get("VETHWRAP_TABLE_WORKERS", "3"))
ROWS = {r[0]: r for r in R}
DECIDED: dict[tuple[str, bool], list] = {}  # (row, beside): [(cause, decided_by)]


@pytest.fixture(scope="module")
def outcomes(request):
    """Every selected row, run a few at a time in threads (each in namespaces of its own);
    a test then reports its row's outcome. Namespaces are deleted by exact name at the end."""
    wanted = [(item.callspec.params["row"][0], item.callspec.params["beside"])
              for item in request.session.items
              if getattr(item, "originalname", "") == "test_broken_state"]
    spaces = {key: Namespaces(f"t{i}x") for i, key in enumerate(wanted)}
    for one in spaces.values():
        request.addfinalizer(one.cleanup)

    def attempt(key):
        try:
            check_row(ROWS[key[0]], key[1], spaces[key])
        except BaseException as exc:  # reported by the row's own test
            return exc
        finally:
            spaces[key].cleanup()
        return None

    with ThreadPoolExecutor(WORKERS) as pool:
        found = dict(zip(wanted, pool.map(attempt, wanted)))
    if os.environ.get("VETHWRAP_TABLE_SUMMARY"):  # which evidence decided each cause
        with open(os.environ["VETHWRAP_TABLE_SUMMARY"], "w") as handle:
            json.dump([[*key, DECIDED.get(key, [])] for key in wanted], handle, indent=1)
    return found


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside-a-decoy"])
@pytest.mark.parametrize("row", R, ids=[r[0] for r in R])
def test_broken_state(row, beside, outcomes):
    failure = outcomes[(row[0], beside)]
    if failure is not None:
        raise failure


def test_namespace_that_does_not_exist(netns):
    done = cli("diagnose", netns.name(), "10.0.0.2", "--fix")
    assert done.returncode == 2 and "does not exist" in done.stderr and not done.stdout


def test_dry_run_without_fix_is_refused(netns):
    done = cli("diagnose", netns.name(), "10.0.0.2", "--dry-run")
    assert done.returncode == 2 and "--fix" in done.stderr and not done.stdout
