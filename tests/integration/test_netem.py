"""Link options: tc words, read-back, MTU refusal; rate, RTT, loss and live change on real labs.

Kernels without sch_netem get loss from a BPF filter and refuse delay; each test runs on both
kinds of kernel and checks what that kernel should do.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ip
from inprocess import vethwrap

from veth_wrap.compile import create as compiling
from veth_wrap.compile import tc
from veth_wrap.errors import PreflightError, UsageError
from veth_wrap.kernel import caps as kernelcaps
from veth_wrap.kernel import tcread
from veth_wrap.model import linkopts as netem
from veth_wrap.model import lossfilter as lossbpf
from veth_wrap.model import shapes
from veth_wrap.run import commands

DATA = Path(__file__).parent.parent / "data" / "tc"


def test_options_become_tc_words():
    opts = netem.link_opts(delay="10ms", jitter="2ms", loss="1%", rate="10mbit")
    assert tc.qdisc_words(opts) == ("netem", "delay", "10ms", "2ms", "loss", "1%",
                                       "rate", "10mbit")
    assert tc.qdisc_words(netem.link_opts(rate="8mbit"))[:3] == ("tbf", "rate", "8mbit")
    assert tc.qdisc_words(netem.link_opts(loss="1%", rate="8mbit"), netem=False)[:3] == (
        "tbf", "rate", "8mbit")
    assert tc.qdisc_words(netem.link_opts(loss="1%"), netem=False) is None
    assert netem.link_opts() is None


@pytest.mark.parametrize("kwargs", [{"delay": "10"}, {"jitter": "2ms"}, {"loss": "101%"},
                                    {"rate": "fast"}, {"mtu": 20}, {"mac": "01:00:00:00:00:01"}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(UsageError):
        netem.link_opts(**kwargs)


def test_read_back_netem_and_tbf():
    # netem.json follows iproute2's netem_print_opt (this build host's kernel has no sch_netem)
    got = tcread.parse_qdiscs((DATA / "netem.json").read_text())
    assert got == {"vw-b": {"qdisc": "netem", "delay": "10ms", "jitter": "2ms", "loss": "1%",
                            "rate": "10mbit"}}
    assert tcread.parse_qdiscs((DATA / "tbf.json").read_text()) == {
        "vw-b": {"qdisc": "tbf", "rate": "10mbit"}}


def test_loss_filter_reads_back_from_a_recorded_kernel_answer():
    # recorded from `tc -j qdisc show` and `tc -j filter show dev vw-b egress` after
    # `create --loss 50% --rate 10mbit` on a kernel without sch_netem
    qdiscs = (DATA / "tbf_clsact.json").read_text()
    assert tcread.clsact_devices(qdiscs) == ["vw-b"]
    loss = tcread.filter_loss(json.loads((DATA / "lossbpf.json").read_text()))
    assert loss == {"loss": "50%", "filter": "bpf"}
    merged = {**tcread.parse_qdiscs(qdiscs)["vw-b"], **loss}
    assert netem.impairments_text(merged) == "loss 50% (bpf), rate 10mbit"
    assert tcread.filter_loss([{"kind": "bpf", "options": {"bytecode": {"insns": [
        {"code": 6, "jt": 0, "jf": 0, "k": 0}]}}}]) is None  # someone else's filter


@pytest.mark.parametrize("percent", ["100%", "50%", "1%", "0.01%", "33.3333%"])
def test_loss_bytecode_round_trips(percent):
    fraction = netem.loss_fraction(percent)
    words = lossbpf.bytecode(fraction).split(",")
    assert int(words[0]) == len(words) - 1 == 12
    insns = [dict(zip(("code", "jt", "jf", "k"), map(int, w.split()))) for w in words[1:]]
    back = tcread.filter_loss([{"kind": "bpf", "options": {"bytecode": {"insns": insns}}}])
    assert back == {"loss": percent, "filter": "bpf"}
    assert 0 <= lossbpf.threshold(fraction) < 2 ** 32


def test_without_netem_loss_is_a_filter_and_delay_is_refused():
    ops = tc.tc_ops("vw-b", netem.link_opts(loss="50%", rate="10mbit"), netem=False)
    assert [op.args[:5] for op in ops] == [("qdisc", "add", "dev", "vw-b", "root"),
                                           ("qdisc", "add", "dev", "vw-b", "clsact"),
                                           ("filter", "add", "dev", "vw-b", "egress")]
    assert ops[2].args[-3:-1] == ("da", "bytecode")
    assert commands.line(ops[2]).endswith(f'bytecode "{lossbpf.bytecode(0.5)}"')  # -batch quoting
    with pytest.raises(PreflightError, match="CONFIG_NET_SCH_NETEM"):
        tc.tc_ops("vw-b", netem.link_opts(delay="10ms"), netem=False)
    assert tc.tc_ops("vw-b", netem.link_opts(loss="0%"), netem=False) == []


def test_live_changes_remove_what_is_no_longer_wanted():
    have = {"qdisc": "tbf", "rate": "10mbit", "loss": "5%", "filter": "bpf"}
    gone = tc.change_ops("vw-b", have, netem.LinkOpts(), netem=False)
    assert [op.args for op in gone] == [("qdisc", "del", "dev", "vw-b", "root"),
                                        ("qdisc", "del", "dev", "vw-b", "clsact")]
    moved = tc.change_ops("vw-b", have, netem.link_opts(loss="5%"), netem=True)
    assert [op.args for op in moved] == [("qdisc", "replace", "dev", "vw-b", "root", "netem",
                                          "loss", "5%"),
                                         ("qdisc", "del", "dev", "vw-b", "clsact")]


@pytest.mark.parametrize("config,deps,expected", [
    ("CONFIG_NET_SCH_NETEM=y\n", None, True),
    ("# CONFIG_NET_SCH_NETEM is not set\n", None, False),
    ("CONFIG_NET_SCH_TBF=y\n", None, False),
    ("CONFIG_NET_SCH_NETEM=m\n", "kernel/net/sched/sch_netem.ko: \n", True),
    ("CONFIG_NET_SCH_NETEM=m\n", "kernel/net/sched/sch_tbf.ko: \n", False),
    ("CONFIG_NET_SCH_NETEM=m\n", None, None),
    (None, None, None),
])
def test_netem_is_known_from_the_kernel_config(config, deps, expected):
    assert kernelcaps.netem_from_files(config, deps) is expected


@pytest.mark.parametrize("available", [True, False])
def test_mtu_mismatch_is_refused_and_options_reach_the_plan(available, monkeypatch):
    lab = shapes.build(["ns0", "ns1"], opts=netem.link_opts(loss="5%", mtu=9000),
                       direction="a-to-b")
    script = "\n".join(commands.script(compiling.create_plan(lab, {}, netem=available)))
    if available:
        assert "tc -n ns0 qdisc add dev vw-ns1 root netem loss 5%" in script
    else:
        assert "qdisc add dev vw-ns1 clsact" in script
        assert f'filter add dev vw-ns1 egress pref {lossbpf.PREF} handle 1 bpf da bytecode "' \
            in script
    assert "tc -n ns1" not in script and script.count("mtu 9000") == 2
    import dataclasses
    bad = dataclasses.replace(lab.links[0], b=dataclasses.replace(lab.links[0].b, opts=None))
    with pytest.raises(UsageError, match="MTU"):
        compiling.create_plan(dataclasses.replace(lab, links=(bad,)), {})


def _has_netem(ns: str) -> bool:
    """The kernel's own answer, independent of vethwrap's detection."""
    done = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem",
                           "delay", "1ms"], capture_output=True, text=True)
    subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "lo", "root"], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def kernel_netem(netns):
    """Whether this kernel has sch_netem, probed in a namespace; vethwrap must agree."""
    answer = _has_netem(netns.make())
    assert kernelcaps.has_netem() is answer
    return answer


def _tc(ns: str, *args: str) -> str:
    return subprocess.run(["tc", "-n", ns, *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.integration
def test_delay_doubles_into_rtt_or_is_refused(kernel_netem, netns, unchanged):
    a, b = netns.name(), netns.name()
    if not kernel_netem:
        refused = vethwrap("create", a, b, "--delay", "50ms")
        assert refused.returncode == 2, refused.stderr
        assert "CONFIG_NET_SCH_NETEM" in refused.stderr and len(refused.stderr.splitlines()) == 1
        assert vethwrap("create", a, b, "--jitter", "1ms", "--delay", "5ms", "-n").returncode == 2
        assert a not in ip("netns", "list").stdout  # nothing was made
        assert vethwrap("create", a, b).returncode == 0
        before = _tc(a, "qdisc", "show"), ip("-n", b, "-j", "link", "show").stdout
        done = vethwrap("link", "set", a, f"vw-{b}", "--delay", "10ms", "--mtu", "1400")
        assert done.returncode == 2 and "sch_netem" in done.stderr
        assert (_tc(a, "qdisc", "show"), ip("-n", b, "-j", "link", "show").stdout) == before
        assert vethwrap("destroy", a, b).returncode == 0
        return
    assert vethwrap("create", a, b, "--delay", "50ms").returncode == 0
    done = vethwrap("ping", a, b, "-c", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert 95 <= json.loads(done.stdout)["rtt_ms"]["avg"] <= 160
    shown = json.loads(vethwrap("link", "set", a, f"vw-{b}", "--delay", "10ms", "--json").stdout)
    assert shown["impairments"]["delay"] == "10ms"
    assert vethwrap("destroy", a, b).returncode == 0


def _loss_percent(a: str, address: str, count: int = 200) -> float:
    """Loss seen by the system ping, at a quick interval (one way is impaired)."""
    done = subprocess.run(["ip", "netns", "exec", a, "ping", "-n", "-q", "-c", str(count),
                           "-i", "0.005", "-W", "0.5", address], capture_output=True, text=True)
    sent, got = re.search(r"(\d+) packets transmitted, (\d+) received", done.stdout).groups()
    assert int(sent) == count  # every request counted: no local error hid a drop
    return 100 * (1 - int(got) / int(sent))


def _end(shown: dict, ns: str) -> dict:
    spaces = {n["name"]: n for lab in shown["labs"] for n in lab["namespaces"]}
    return spaces[ns]["interfaces"][0]


@pytest.mark.integration
def test_loss_full_needs_no_verify_and_half_loses_about_half(kernel_netem, netns, unchanged):
    a, b = netns.name(), netns.name()
    refused = vethwrap("create", a, b, "--loss", "100%")
    assert refused.returncode == 1 and "--no-verify" in refused.stderr
    assert vethwrap("destroy", a, b).returncode == 0
    assert vethwrap("create", a, b, "--loss", "100%", "--no-verify").returncode == 0
    assert vethwrap("ping", a, b, "-c", "3", "-W", "0.3").returncode == 1
    held = _end(json.loads(vethwrap("show", a, "--json").stdout), a)["impairments"]
    assert held == ({"qdisc": "netem", "loss": "100%"} if kernel_netem
                    else {"loss": "100%", "filter": "bpf"})
    if not kernel_netem:  # ARP passes the filter: the neighbour is resolved, IP is lost
        assert "lladdr" in ip("-n", a, "neigh", "show", "10.0.0.2").stdout
    done = vethwrap("link", "set", a, f"vw-{b}", "--loss", "50%", "--clear", "--json")
    assert json.loads(done.stdout)["impairments"]["loss"] == "50%", done.stderr
    cleared = vethwrap("link", "set", b, f"vw-{a}", "--clear", "--json")
    assert json.loads(cleared.stdout)["impairments"] == {}
    assert "clsact" not in _tc(b, "qdisc", "show") and "netem" not in _tc(b, "qdisc", "show")
    assert 35 <= _loss_percent(a, "10.0.0.2") <= 65
    assert vethwrap("link", "set", a, f"vw-{b}", "--clear").returncode == 0
    assert _loss_percent(a, "10.0.0.2", 50) == 0
    assert vethwrap("destroy", a, b).returncode == 0


@pytest.mark.integration
def test_show_reports_rate_and_loss_read_back(kernel_netem, netns, unchanged):
    a, b = netns.name(), netns.name()
    script = vethwrap("create", a, b, "--rate", "10mbit", "--loss", "20%", "--dry-run").stdout
    assert ("netem loss 20% rate 10mbit" if kernel_netem else "bpf da bytecode") in script
    # the printed plan is the one that runs: feed it to a shell
    subprocess.run(["sh", "-e"], input=script, text=True, check=True, capture_output=True)
    done = vethwrap("show", "--json", a, b)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    for ns in (a, b):
        held = _end(shown, ns)["impairments"]
        assert (held["rate"], held["loss"]) == ("10mbit", "20%")
        assert held.get("filter") == (None if kernel_netem else "bpf")
    table = vethwrap("show", a).stdout
    assert "loss 20%" in table and "rate 10mbit" in table
    assert ("bpf" in table) is not kernel_netem
    assert vethwrap("destroy", a, b).returncode == 0


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
def test_rate_limits_throughput_and_changes_live(netns, unchanged):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--rate", "10mbit").returncode == 0
    index = ip("-n", a, "-j", "link", "show", f"vw-{b}").stdout
    assert 7e6 <= _iperf(a, b, "10.0.0.2") <= 11e6
    done = vethwrap("link", "set", a, f"vw-{b}", "--rate", "40mbit", "--mtu", "1400", "--mac",
               "02:00:00:00:07:01", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["impairments"]["rate"] == "40mbit" and shown["mac"] == "02:00:00:00:07:01"
    assert shown["ifindex"] == json.loads(index)[0]["ifindex"]  # changed, not rebuilt
    assert json.loads(ip("-n", b, "-j", "link", "show", f"vw-{a}").stdout)[0]["mtu"] == 1400
    assert 28e6 <= _iperf(a, b, "10.0.0.2") <= 44e6
    assert vethwrap("link", "set", a, f"vw-{b}", "--clear").returncode == 0
    tc = subprocess.run(["tc", "-n", a, "qdisc", "show", "dev", f"vw-{b}"], capture_output=True,
                        text=True, check=True)
    assert "tbf" not in tc.stdout
    assert vethwrap("link", "set", a, "lo", "--rate", "1mbit").returncode == 2
    assert vethwrap("destroy", a, b).returncode == 0


def test_diagnose_names_loss_and_long_delays_and_takes_only_them_off():
    from veth_wrap.explain.impairpath import _finding, delay_ms

    assert delay_ms({"qdisc": "netem", "delay": "400ms", "jitter": "100ms"}) == 500
    assert delay_ms({"qdisc": "tbf", "rate": "1kbit"}) == 0  # tbf's burst passes a probe
    assert delay_ms({"qdisc": "netem", "rate": "1kbit"}) == 784  # one ping frame at 1 kbit/s
    lossy = {("ns0", "vw-ns1"): {"qdisc": "netem", "delay": "5ms", "loss": "100%"}}
    slow = {("ns1", "vw-ns0"): {"qdisc": "netem", "delay": "2s", "rate": "10mbit"}}
    found = _finding(lossy, slow, 2005.0, 1000.0)
    assert found.cause.value == "link-impaired"
    assert found.summary.startswith("the link is impaired: loss 100% on vw-ns1 in ns0 drops")
    assert found.fixes == [
        ["tc", "-n", "ns0", "qdisc", "replace", "dev", "vw-ns1", "root", "netem", "delay", "5ms"],
        ["tc", "-n", "ns1", "qdisc", "del", "dev", "vw-ns0", "root"]]
    bpf = {("ns0", "vw-ns1"): {"qdisc": "tbf", "rate": "10mbit", "loss": "5%", "filter": "bpf"}}
    assert _finding(bpf, {}, 0.0, 1000.0).fixes == [
        ["tc", "-n", "ns0", "qdisc", "del", "dev", "vw-ns1", "clsact"]]
