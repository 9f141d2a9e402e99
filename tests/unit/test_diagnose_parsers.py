"""The evidence parsers, table-driven from recorded kernel output under tests/data/.

Recorded from real runs: `ip -s -j link` and `tc -s -j qdisc` around a ping into a bpf filter
that shoots everything (tests/data/probe), the skb:kfree_skb trace buffer of a ping into a
pfifo of limit 0, `ip -j rule list` and `ip -j route show table all` of a namespace with
blackhole, prohibit, throw routes and an unreachable rule (tests/data/routing), and the
batches diagnose ran in the recordings of tests/data/diagnose.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import RecordingRunner

from veth_wrap.explain import fwread
from veth_wrap.explain.countedping import Probe, snapshot
from veth_wrap.explain.nets import Nets
from veth_wrap.explain.routing import lookup
from veth_wrap.kernel import droptrace, reader
from veth_wrap.run.runner import Result

DATA = Path(__file__).parent.parent / "data"


def load(name: str):
    path = DATA / name
    return json.loads(path.read_text()) if path.suffix == ".json" else path.read_text()


@pytest.mark.parametrize("protocols,expected", [
    ((), [("QDISC_DROP", "__dev_queue_xmit", 2054, 1)]),  # NO_SOCKET, NOT_SPECIFIED: noise
    ((2054,), [("QDISC_DROP", "__dev_queue_xmit", 2054, 1)]),
    ((2048,), []),
    ((0x86DD,), []),
])
def test_drop_reasons(protocols, expected):
    found = droptrace.parse(load("probe/kfree_skb_trace.txt"), protocols)
    assert [(d.reason, d.function, d.protocol, d.count) for d in found] == expected


def test_drop_reason_text():
    drop = droptrace.Drop("IP_RPFILTER", "ip_rcv_finish_core", 2048, 2)
    assert drop.text() == "IP_RPFILTER in ip_rcv_finish_core (2 packets)"


def _probe(before: list, after: list, filters: list | None = None) -> Probe:
    def answer(argv, stdin):  # the recorded filters on ingress, none on egress
        return Result(argv, json.dumps(filters if "ingress" in (stdin or "") else []), "", 0)

    runner = RecordingRunner(answer)
    probe = Probe(Nets(runner, ["b"], start="b"), [("b", "vb")], 4)
    probe.before, probe.after = snapshot(before, ["b"]), snapshot(after, ["b"])
    return probe


def test_counters_and_a_shooting_bpf_filter():
    probe = _probe([load("probe/link_stats_before.json"), load("probe/qdisc_before.json")],
                   [load("probe/link_stats_after.json"), load("probe/qdisc_after.json")],
                   load("probe/filter_ingress_bpf.json"))
    assert probe.counters() == ["vb (b): tx +0, rx +2"]  # it arrived; nothing answered
    found = probe.tc_drops()
    assert found is not None and found.cause.value == "tc-drop"
    assert "clsact ffff: on vb dropped 2 packets" in found.evidence[0]
    assert found.fixes == [["tc", "-n", "b", "filter", "del", "dev", "vb", "ingress", "pref",
                            "49152"]]
    undo = found.undo[tuple(found.fixes[0])]
    assert undo[-3:] == ["da", "bytecode", "1,6 0 0 2"]


@pytest.mark.parametrize("grew,fixed", [(0, False), (1, True), (5, True)])
def test_pfifo_drops(grew, fixed):
    after = load("probe/qdisc_pfifo_limit0.json")
    for q in after:
        q["dev"] = "vb"
    before = json.loads(json.dumps(after))
    before[0]["drops"] -= grew
    found = _probe([[], before], [[], after]).tc_drops()
    assert (found is not None) is fixed
    if fixed:
        assert found.fixes == [["tc", "-n", "b", "qdisc", "del", "dev", "vb", "root"]]
        assert found.undo[tuple(found.fixes[0])][-4:] == ["root", "pfifo", "limit", "0"]


RULES = load("routing/policy.json")


@pytest.mark.parametrize("dst,src,blocks,route", [
    ("10.0.0.2", None, ["route blackhole 10.0.0.2"], "10.0.0.0/24"),
    ("10.0.0.3", None, ["rule pref 90 to 10.0.0.3 unreachable"], "10.0.0.0/24"),
    ("10.0.0.2", "10.0.0.1", ["route prohibit 10.0.0.0/25 in table 100",
                              "route blackhole 10.0.0.2"], "10.0.0.0/24"),
    ("10.0.0.9", "10.0.0.1", [], "10.0.0.0/24"),
    ("10.0.0.1", None, [], "10.0.0.1"),
    ("10.0.0.200", "10.0.0.1", [], "10.0.0.0/24"),
])
def test_policy_lookup(dst, src, blocks, route):
    found = lookup(RULES["rules"], RULES["routes"], dst, src)
    assert [b.text for b in found.blocks] == blocks
    assert found.route is not None and found.route["dst"] == route


def test_policy_fix_words():
    found = lookup(RULES["rules"], RULES["routes"], "10.0.0.3")
    assert found.blocks[0].fix == ["rule", "del", "pref", "90", "to", "10.0.0.3", "unreachable"]
    found = lookup(RULES["rules"], RULES["routes"], "10.0.0.2", "10.0.0.1")
    assert found.blocks[0].fix == ["route", "del", "prohibit", "10.0.0.0/25", "table", "100"]


def _batch(recording: str, marker: str) -> dict:
    calls = load(f"diagnose/{recording}.json")["calls"]
    return next(c for c in calls if marker in (c["stdin"] or ""))


def test_firewall_batch_split():
    call = _batch("iptables_drop", "iptables-save")
    parts = reader.split_saves(call["stdout"])
    assert len(parts) == call["stdin"].count("nft -j")
    chains, notes = fwread._chains_of("ns1", *parts[1], "iptables-save", 4)
    rules = [r.text for c in chains for r in c.rules]
    assert "-A INPUT -p icmp -j DROP" in rules
    assert notes[0].startswith("iptables-save in ns1:")


def test_sysctl_batch_sections():
    call = _batch("forwarding_off", "sysctl -e")
    sections = reader._sections(call["stdout"])
    assert len(sections) == call["stdin"].count("netns exec")
    assert all(rows[0].startswith(reader.SYSCTL_FIRST + " = ") for rows in sections)
    forwarding = {row.split(" = ")[1] for rows in sections for row in rows
                  if row.startswith("net.ipv4.ip_forward =")}
    assert "0" in forwarding


@pytest.mark.parametrize("sent,got,where", [
    (2, None, "never arrive at vb in b (rx +0)"),  # vb's counters did not move
    (2, "after", "the requests arrive at vb in b (rx +2) and no echo reply leaves it"),
    (0, None, "the last device on the way, vb in b, received +0 and sent +0"),
])
def test_where_the_counters_say_the_requests_stop(sent, got, where):
    stats = load("probe/link_stats_before.json")
    va = {"ifname": "va", "stats64": {"tx": {"packets": 5}, "rx": {"packets": 0}}}
    moved = {**va, "stats64": {"tx": {"packets": 5 + sent}, "rx": {"packets": 0}}}
    after = load("probe/link_stats_after.json") if got else stats
    probe = _probe([[va, *stats], []], [[moved, *after], []])
    probe.devices = [("b", "va"), ("b", "vb")]
    found = probe.stops(probe.devices)
    assert where in found
