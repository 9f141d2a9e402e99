"""Labs over several hosts, on simulated hosts: per-host up and down, VXLAN links and bridges."""

from __future__ import annotations

import json
import signal
import time

import pytest
from conftest import RUN_ID
from hosts import WAN, sim_hosts_fixture, tcp_transfer

from veth_wrap.model.hostshare import tunnel_ifname
from veth_wrap.model.names import p2p_ifname

pytestmark = pytest.mark.integration
sim_hosts = sim_hosts_fixture()
PREFIX = f"vt{RUN_ID}m"


@pytest.fixture
def wan(tmp_path):
    path = tmp_path / "wan.yaml"
    path.write_text(WAN)
    return str(path)


def _two(sim_hosts, mtu: int = 1500):
    left, right = sim_hosts.add("left"), sim_hosts.add("right")
    sim_hosts.link(left, right, mtu=mtu)
    return left, right


def _vxlan(host, ns: str, ifname: str) -> dict:
    return json.loads(host.ip("-n", ns, "-j", "-d", "link", "show", ifname).stdout)[0]


def test_link_and_stretched_bridge_ping_and_carry_tcp(sim_hosts, wan, unchanged):
    left, right = _two(sim_hosts, mtu=1400)
    before = {host.name: host.snapshot() for host in (left, right)}
    first = left.vethwrap("up", "-f", wan, "--prefix", PREFIX, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["host"] == "left"  # found from the underlay address alone
    assert {p["target"] for p in report["pending"]} == {f"{PREFIX}b1", f"{PREFIX}b2"}
    second = right.vethwrap("up", "-f", wan, "--prefix", PREFIX, "--host", "right", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["pending"] == []
    assert left.vethwrap("pingall", "-f", wan, "--prefix", PREFIX).returncode == 0
    a1, b1, a2, b2 = (PREFIX + n for n in ("a1", "b1", "a2", "b2"))
    end = _vxlan(left, a1, p2p_ifname(b1))
    info = end["linkinfo"]["info_data"]
    assert end["mtu"] == 1350 and info["local"] == "192.168.77.1"
    assert info["remote"] == "192.168.77.2" and info["port"] == 14789
    assert end["ifalias"].startswith(f"vethwrap/{PREFIX}wan/")
    sent, got, _ = tcp_transfer(right, b1, "10.61.0.2", left, a1)
    assert sent == got
    sent, got, _ = tcp_transfer(right, b2, "10.61.1.2", left, a2, port=5202)
    assert sent == got
    for host in (left, right):
        done = host.vethwrap("down", "-f", wan, "--prefix", PREFIX, "--host", host.name)
        assert done.returncode == 0, done.stderr
        assert host.snapshot() == before[host.name]


def test_up_again_changes_nothing_and_pingall_sees_both_hosts(sim_hosts, wan, unchanged):
    left, right = _two(sim_hosts)
    for host in (left, right):
        assert host.vethwrap("up", "-f", wan, "--prefix", PREFIX).returncode == 0
    again = left.vethwrap("up", "-f", wan, "--prefix", PREFIX, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False
    matrix = left.vethwrap("pingall", "-f", wan, "--prefix", PREFIX, "--json")
    assert matrix.returncode == 0, matrix.stderr
    data = json.loads(matrix.stdout)
    assert data["answered"] == data["total"] == 2
    shown = json.loads(left.vethwrap("show", "--json").stdout)
    tunnels = [i["tunnel"] for lab in shown["labs"] for ns in lab["namespaces"]
               for i in ns["interfaces"] if i.get("tunnel")]
    assert {t["remote"] for t in tunnels if t["remote"]} == {"192.168.77.2"}
    assert len(tunnels) == 2


def test_pingall_names_what_does_not_answer(sim_hosts, wan, unchanged):
    left, _right = _two(sim_hosts)
    assert left.vethwrap("up", "-f", wan, "--prefix", PREFIX).returncode == 0
    matrix = left.vethwrap("pingall", "-f", wan, "--prefix", PREFIX, "-W", "0.3")
    assert matrix.returncode == 1
    assert "2 of 2 pairs did not answer from host left" in matrix.stderr


def test_three_hosts_on_one_bridge(sim_hosts, tmp_path, unchanged):
    hosts = [sim_hosts.add(name) for name in ("h1", "h2", "h3")]
    sim_hosts.switch(hosts)
    path = tmp_path / "three.yaml"
    path.write_text("name: tri\nsubnet: 10.62.0.0/24\nhosts:\n"
                    + "".join(f"  {h.name}: {{underlay: {h.address}, namespaces: [m{i}, n{i}]}}\n"
                              for i, h in enumerate(hosts))
                    + "namespaces: [m0, n0, m1, n1, m2, n2]\n"
                    + "bridges:\n  - {name: tri, members: [m0, n0, m1, n1, m2, n2]}\n")
    for host in hosts:
        done = host.vethwrap("up", "-f", str(path), "--prefix", PREFIX)
        assert done.returncode == 0, done.stderr
    for host in hosts:
        matrix = host.vethwrap("pingall", "-f", str(path), "--prefix", PREFIX, "--json")
        data = json.loads(matrix.stdout)
        assert matrix.returncode == 0 and data["answered"] == data["total"] == 10
    fdb = hosts[0].run("bridge", "-n", f"vethwrap-{PREFIX}tri", "fdb", "show", "dev",
                       tunnel_ifname(f"{PREFIX}tri")).stdout
    assert "dst 192.168.77.2" in fdb and "dst 192.168.77.3" in fdb


def test_dry_run_per_host_changes_nothing(sim_hosts, wan, unchanged):
    left, right = _two(sim_hosts, mtu=9000)
    before = right.snapshot()
    shown = right.vethwrap("up", "-f", wan, "--host", "right", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert "type vxlan id" in shown.stdout
    assert "local 192.168.77.2 remote 192.168.77.1" in shown.stdout
    assert "mtu 8950" in shown.stdout and "dev ul1-left" in shown.stdout
    assert "bridge -n vethwrap-wan fdb append 00:00:00:00:00:00 dev vx-wan dst 192.168.77.1" \
        in shown.stdout
    assert right.snapshot() == before


def test_no_local_underlay_needs_host(sim_hosts, wan, unchanged):
    lone = sim_hosts.add("lone")
    done = lone.vethwrap("up", "-f", wan)
    assert done.returncode == 2
    assert "none of the hosts' underlay addresses is on this machine" in done.stderr
    assert "--host" in done.stderr and lone.netns() == []


def test_kill_mid_up_then_destroy_all(sim_hosts, tmp_path, unchanged):
    left, right = _two(sim_hosts)
    before = left.snapshot()
    path = tmp_path / "big.yaml"
    members = [f"k{i}" for i in range(30)]
    here, there = ", ".join(members[:20]), ", ".join(members[20:])
    path.write_text("name: big\nsubnet: 10.63.0.0/24\nhosts:\n"
                    f"  left: {{underlay: 192.168.77.1, namespaces: [{here}]}}\n"
                    f"  right: {{underlay: 192.168.77.2, namespaces: [{there}]}}\n"
                    f"namespaces: [{', '.join(members)}]\n"
                    f"bridges:\n  - {{name: big, members: [{', '.join(members)}]}}\n")
    import os
    import sys

    env = dict(os.environ, NO_COLOR="1")
    proc = left.start(sys.executable, "-m", "veth_wrap", "up", "-f", str(path), "--prefix",
                      PREFIX, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(left.netns()) < 5:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # nsenter was killed; the vethwrap it ran may go on: wait for the lock to be free
    gone = left.vethwrap("destroy", "--all")
    assert gone.returncode == 0, gone.stderr
    assert left.snapshot() == before


def test_diagnose_follows_a_crossing_link_to_the_underlay(sim_hosts, wan, unchanged):
    left, _right = _two(sim_hosts)
    assert left.vethwrap("up", "-f", wan, "--prefix", PREFIX).returncode == 0
    a1, a2 = PREFIX + "a1", PREFIX + "a2"
    missing = left.vethwrap("diagnose", a1, "10.61.0.2", "--json")
    data = json.loads(missing.stdout)
    assert missing.returncode == 1 and data["cause"] == "far-side-missing", missing.stdout
    assert "VXLAN" in data["evidence"][1] and "192.168.77.2" in data["evidence"][1]
    bridged = json.loads(left.vethwrap("diagnose", a2, "10.61.1.2", "--json").stdout)
    assert bridged["cause"] == "far-side-missing"
    left.ip("route", "add", "192.168.77.2/32", "via", "192.168.77.99")  # a dead next hop
    broken = json.loads(left.vethwrap("diagnose", a1, "10.61.0.2", "--json").stdout)
    assert broken["cause"] == "underlay-unreachable", broken
    assert "192.168.77.99 does not answer" in broken["summary"]


def test_a_partition_across_hosts_cuts_the_crossing_pairs_only(sim_hosts, wan, unchanged):
    left, right = _two(sim_hosts)
    before = {host.name: host.snapshot() for host in (left, right)}
    for host in (left, right):
        assert host.vethwrap("up", "-f", wan, "--prefix", PREFIX, "--host",
                             host.name).returncode == 0
    a1, b1, a2, b2 = (PREFIX + n for n in ("a1", "b1", "a2", "b2"))
    for host in (left, right):  # each host places its own namespaces' part
        done = host.vethwrap("partition", "-f", wan, "--prefix", PREFIX, "a1,a2", "b1")
        assert done.returncode == 0, done.stderr
        assert "on another host" in done.stderr
    for host, ns in ((left, a1), (left, a2), (right, b1)):
        assert "inet vethwrap" in host.run("ip", "netns", "exec", ns, "nft", "list",
                                           "tables").stdout
    assert "inet vethwrap" not in right.run("ip", "netns", "exec", b2, "nft", "list",
                                            "tables").stdout
    assert left.run("ip", "netns", "exec", a1, "ping", "-c1", "-W1", "10.61.0.2",
                    check=False).returncode != 0  # a1 -/- b1 over the VXLAN link
    assert left.run("ip", "netns", "exec", a2, "ping", "-c2", "-W2", "10.61.1.2",
                    check=False).returncode == 0  # b2 was not named: a2 still hears it
    for host in (left, right):
        assert host.vethwrap("heal", "--lab", f"{PREFIX}wan").returncode == 0
    assert left.run("ip", "netns", "exec", a1, "ping", "-c2", "-W2", "10.61.0.2",
                    check=False).returncode == 0
    for host in (left, right):
        assert host.vethwrap("down", "-f", wan, "--prefix", PREFIX, "--host",
                             host.name).returncode == 0
        assert host.snapshot() == before[host.name]


def test_up_on_each_host_starts_the_services_of_its_own_namespaces(sim_hosts, tmp_path,
                                                                     unchanged):
    left, right = _two(sim_hosts)
    path = tmp_path / "wan.yaml"
    path.write_text(WAN + "services:\n"
                          "  a1: [{name: idle, argv: [sleep, '600']}]\n"
                          "  b2: [{name: idle, argv: [sleep, '600']}, "
                          "{name: quiet, argv: [sleep, '600']}]\n")
    shown = right.vethwrap("up", "-f", str(path), "--prefix", PREFIX, "--host", "right",
                           "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert f"vethwrap run {PREFIX}b2 --name quiet -- sleep 600" in shown.stdout.splitlines()
    assert f"{PREFIX}a1" not in "".join(line for line in shown.stdout.splitlines()
                                        if line.startswith("vethwrap run"))
    try:
        for host, mine in ((left, [("a1", "idle")]), (right, [("b2", "idle"), ("b2", "quiet")])):
            done = host.vethwrap("up", "-f", str(path), "--prefix", PREFIX, "--host", host.name,
                                 "--json", "--no-verify")
            assert done.returncode == 0, done.stderr
            started = json.loads(done.stdout)["services"]
            assert [(s["namespace"], s["name"]) for s in started] == [
                (PREFIX + ns, name) for ns, name in mine]
            assert all(s["started"] and s["pid"] > 0 for s in started)
            running = json.loads(host.vethwrap("ps", "--json").stdout)["processes"]
            assert {(p["namespace"], p["name"]) for p in running
                    if p["name"]} >= {(PREFIX + ns, name) for ns, name in mine}
        again = left.vethwrap("up", "-f", str(path), "--prefix", PREFIX, "--host", "left",
                              "--json", "--no-verify")
        assert [s["started"] for s in json.loads(again.stdout)["services"]] == [False]
    finally:
        for host in (left, right):
            done = host.vethwrap("down", "-f", str(path), "--prefix", PREFIX, "--host",
                                 host.name, "--json", "--grace", "0")
            assert done.returncode == 0, done.stderr
    for host in (left, right):
        shown = json.loads(host.vethwrap("ps", "--json").stdout)["processes"]
        assert not any(p["name"] for p in shown), shown
