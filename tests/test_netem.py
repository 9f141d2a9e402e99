"""Link options: tc words, read-back, MTU refusal; rate, RTT, loss and live change on real labs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ip

from veth_wrap import compile as compiling
from veth_wrap import netem, shapes
from veth_wrap.errors import UsageError

DATA = Path(__file__).parent / "data" / "tc"


def test_options_become_tc_words():
    opts = netem.link_opts(delay="10ms", jitter="2ms", loss="1%", rate="10mbit")
    assert netem.qdisc_words(opts) == ("netem", "delay", "10ms", "2ms", "loss", "1%",
                                       "rate", "10mbit")
    assert netem.qdisc_words(netem.link_opts(rate="8mbit"))[:3] == ("tbf", "rate", "8mbit")
    assert netem.link_opts() is None


@pytest.mark.parametrize("kwargs", [{"delay": "10"}, {"jitter": "2ms"}, {"loss": "101%"},
                                    {"rate": "fast"}, {"mtu": 20}, {"mac": "01:00:00:00:00:01"}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(UsageError):
        netem.link_opts(**kwargs)


def test_read_back_netem_and_tbf():
    # netem.json follows iproute2's netem_print_opt (this build host's kernel has no sch_netem)
    got = netem.parse_qdiscs((DATA / "netem.json").read_text())
    assert got == {"vw-b": {"qdisc": "netem", "delay": "10ms", "jitter": "2ms", "loss": "1%",
                            "rate": "10mbit"}}
    assert netem.parse_qdiscs((DATA / "tbf.json").read_text()) == {
        "vw-b": {"qdisc": "tbf", "rate": "10mbit"}}


def test_mtu_mismatch_is_refused_and_options_reach_the_plan():
    lab = shapes.build(["ns0", "ns1"], opts=netem.link_opts(delay="5ms", mtu=9000),
                       direction="a-to-b")
    script = "\n".join(compiling.create_plan(lab, {}).script())
    assert "tc -n ns0 qdisc add dev vw-ns1 root netem delay 5ms" in script
    assert "tc -n ns1" not in script and script.count("mtu 9000") == 2
    import dataclasses
    bad = dataclasses.replace(lab.links[0], b=dataclasses.replace(lab.links[0].b, opts=None))
    with pytest.raises(UsageError, match="MTU"):
        compiling.create_plan(dataclasses.replace(lab, links=(bad,)), {})


def _has_netem(ns: str) -> bool:
    done = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem",
                           "delay", "1ms"], capture_output=True, text=True)
    subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "lo", "root"], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def netem_ns(netns):
    """Skip (with the reason) on kernels without sch_netem."""
    probe = netns.make()
    if not _has_netem(probe):
        pytest.skip("this kernel has no sch_netem (CONFIG_NET_SCH_NETEM)")
    return netns


@pytest.mark.integration
def test_delay_on_both_ends_doubles_into_rtt(netem_ns, cli, unchanged):
    a, b = netem_ns.name(), netem_ns.name()
    assert cli("create", a, b, "--delay", "50ms").returncode == 0
    done = cli("ping", a, b, "-c", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert 95 <= json.loads(done.stdout)["rtt_ms"]["avg"] <= 160
    shown = json.loads(cli("link", "set", a, f"vw-{b}", "--delay", "10ms", "--json").stdout)
    assert shown["impairments"]["delay"] == "10ms"
    assert cli("destroy", a, b).returncode == 0


@pytest.mark.integration
def test_loss_full_needs_no_verify_and_half_loses_about_half(netem_ns, cli, unchanged):
    a, b = netem_ns.name(), netem_ns.name()
    refused = cli("create", a, b, "--loss", "100%")
    assert refused.returncode == 1 and "--no-verify" in refused.stderr
    assert cli("destroy", a, b).returncode == 0
    assert cli("create", a, b, "--loss", "100%", "--no-verify").returncode == 0
    assert cli("ping", a, b, "-c", "3", "-W", "0.3").returncode == 1
    assert cli("link", "set", a, f"vw-{b}", "--loss", "50%", "--clear").returncode == 0
    assert cli("link", "set", b, f"vw-{a}", "--clear").returncode == 0
    stats = json.loads(cli("ping", a, b, "-c", "100", "-W", "0.3", "--json").stdout)
    assert 25 <= stats["packet_loss"] <= 75
    assert cli("destroy", a, b).returncode == 0


def _iperf(a: str, b: str, address: str) -> float:
    """Throughput from a to b in bit/s: a one-off server in b, a 2 s client in a."""
    server = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s", "-1", "-B", address],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # the server takes a moment to listen: retry while refused
            client = subprocess.run(["ip", "netns", "exec", a, "iperf3", "-c", address, "-t",
                                     "2", "-J"], capture_output=True, text=True, timeout=30)
            doc = json.loads(client.stdout or "{}")
            if client.returncode == 0 and "error" not in doc:  # 3.12 exits 0 on a refusal
                return doc["end"]["sum_received"]["bits_per_second"]
            time.sleep(0.1)
        raise AssertionError(f"iperf3 never connected: {client.stdout[-300:]}")
    finally:
        server.kill()
        server.wait(timeout=10)


@pytest.mark.integration
def test_rate_limits_throughput_and_changes_live(netns, cli, unchanged):
    a, b = netns.name(), netns.name()
    assert cli("create", a, b, "--rate", "10mbit").returncode == 0
    index = ip("-n", a, "-j", "link", "show", f"vw-{b}").stdout
    assert 7e6 <= _iperf(a, b, "10.0.0.2") <= 11e6
    done = cli("link", "set", a, f"vw-{b}", "--rate", "40mbit", "--mtu", "1400", "--mac",
               "02:00:00:00:07:01", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["impairments"]["rate"] == "40mbit" and shown["mac"] == "02:00:00:00:07:01"
    assert shown["ifindex"] == json.loads(index)[0]["ifindex"]  # changed, not rebuilt
    assert json.loads(ip("-n", b, "-j", "link", "show", f"vw-{a}").stdout)[0]["mtu"] == 1400
    assert 28e6 <= _iperf(a, b, "10.0.0.2") <= 44e6
    assert cli("link", "set", a, f"vw-{b}", "--clear").returncode == 0
    tc = subprocess.run(["tc", "-n", a, "qdisc", "show", "dev", f"vw-{b}"], capture_output=True,
                        text=True, check=True)
    assert "tbf" not in tc.stdout
    assert cli("link", "set", a, "lo", "--rate", "1mbit").returncode == 2
    assert cli("destroy", a, b).returncode == 0
