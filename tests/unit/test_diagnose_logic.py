"""diagnose's pure logic on recorded data (tests/data/diagnose): no namespace is made here.

The *.json recordings hold every command diagnose() ran on a live broken lab (see their
`built_with`) and what it printed; replaying them checks the walk without root. Re-record
them with `python3 scripts/record_diagnose.py` (root) when diagnose reads something new.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakes import RecordingRunner

from veth_wrap.errors import UsageError
from veth_wrap.explain import fwread
from veth_wrap.explain.diagnose import Cause, Diagnosis, diagnose
from veth_wrap.explain.firewall import Packet, Place, find_drops, parse_iptables_save, parse_nft
from veth_wrap.explain.fixes import route_fix, shell_line
from veth_wrap.explain.nets import Nets, matching_route
from veth_wrap.kernel import droptrace
from veth_wrap.model.destination import parse_address
from veth_wrap.run.runner import Result

DATA = Path(__file__).parent.parent / "data" / "diagnose"
RECORDED = ["tutorial", "forwarding_off", "bridge_port_detached", "iptables_drop"]


def replayer(calls: list[dict]) -> RecordingRunner:
    """A runner that answers each command with its recorded output, in recorded order."""
    queue: dict[tuple, list[dict]] = {}
    for call in calls:
        queue.setdefault((tuple(call["argv"]), call["stdin"]), []).append(call)

    def answer(argv, stdin):
        pending = queue.get((argv, stdin))
        assert pending, f"not in the recording: {argv}"
        call = pending.pop(0) if len(pending) > 1 else pending[0]
        return Result(argv, call["stdout"], call["stderr"], call["returncode"])

    return RecordingRunner(answer)


@pytest.fixture
def firewall_tools(monkeypatch):
    """Pretend iptables and nft are installed and nf_tables is loaded, as when recorded."""
    monkeypatch.setattr(fwread.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(fwread, "tables_loaded", lambda: (True, True))  # legacy too, as here
    monkeypatch.setattr(droptrace, "watching", _unwatched)  # unit tests leave tracefs alone


@contextmanager
def _unwatched(runner, family):
    yield droptrace.Watch([], "drop reasons not watched in unit tests")


def recording(name: str) -> dict:
    """One recorded scenario."""
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.mark.parametrize("name", RECORDED)
def test_replayed_diagnosis(name, firewall_tools):
    data = recording(name)
    result = diagnose(data["namespace"], parse_address(data["destination"]),
                      runner=replayer(data["calls"]))
    expected = data["expected"]
    assert result.cause.value == expected["cause"]
    assert result.fixes == expected["fixes"]
    assert result.summary == expected["summary"]
    unwatched = [e for e in expected["evidence"] if "skb:kfree_skb" not in e]  # not replayed
    assert result.evidence == unwatched


def test_tutorial_fixes_both_namespaces(firewall_tools):
    data = recording("tutorial")
    result = diagnose("ns0", parse_address("10.0.0.2"), runner=replayer(data["calls"]))
    assert result.cause is Cause.ROUTE_WRONG_DEVICE
    assert result.script == ["ip -n ns0 route change 10.0.0.0/24 dev veth0",
                             "ip -n ns1 route change 10.0.0.0/24 dev veth2"]


def test_few_processes(firewall_tools):
    data = recording("bridge_port_detached")
    runner = replayer(data["calls"])
    diagnose("ns0", parse_address("10.0.0.2"), runner=runner)
    assert len(runner.calls) <= 8  # netns list, one batch, ping, a few route gets and sysctls


def test_unknown_says_what_it_checked(firewall_tools):
    data = recording("iptables_drop")
    for call in data["calls"]:
        if "iptables-save" in call["argv"] or "nft" in call["argv"]:
            call["stdout"] = ""
        elif "iptables-save" in (call["stdin"] or ""):  # a batch: no rules, empty rulesets
            call["stdout"] = '{"nftables": []}\n' * call["stdin"].count("nft -j")
    # with nothing else wrong, the ends' qdiscs are read: the kernel's default, no impairment
    qdiscs = [{"kind": "noqueue", "handle": "0:", "dev": dev, "root": True, "refcnt": 2,
               "options": {}} for dev in ("va", "vb")]
    data["calls"].append({"argv": ["ip", "-batch", "-"], "returncode": 0,
                          "stdin": "netns exec ns0 tc -j qdisc show\n"
                                   "netns exec ns1 tc -j qdisc show\n",
                          "stdout": json.dumps(qdiscs[:1]) + json.dumps(qdiscs[1:]),
                          "stderr": ""})
    result = diagnose("ns0", parse_address("10.0.0.2"), runner=replayer(data["calls"]))
    assert result.cause is Cause.UNKNOWN and not result.fixes
    assert any(line.endswith("va (ns0), vb (ns1): none") for line in result.checked)
    assert any("iptables-save in ns1" in line for line in result.checked)
    assert any("rp_filter" in line for line in result.checked)


def test_reachable_without_verbose_only_pings(firewall_tools):
    data = recording("tutorial")
    ping_call = next(c for c in data["calls"] if "ping" in c["argv"])
    ping_call["stdout"] = ping_call["stdout"].replace(" 0 received", " 2 received")
    runner = replayer(data["calls"])
    result = diagnose("ns0", parse_address("10.0.0.2"), runner=runner)
    assert result.reachable and result.cause is None
    assert len(runner.calls) == 2  # netns list, ping


@pytest.mark.parametrize("ns,dest", [("bad name", "10.0.0.1"), ("ns0", "10.0.0.300"),
                                     ("ns0", "example.org")])
def test_bad_arguments(ns, dest):
    with pytest.raises(UsageError) as caught:
        diagnose(ns, parse_address(dest), runner=RecordingRunner())
    assert caught.value.exit_code == 2


def test_missing_namespace_is_a_usage_error():
    runner = RecordingRunner(lambda argv, stdin: Result(argv, '[{"name":"other"}]', "", 0))
    with pytest.raises(UsageError, match="'ns9' does not exist"):
        Nets.open("ns9", runner)


def test_fix_words_are_shell_quoted():
    diag = Diagnosis("ns 0", "10.0.0.2", False, Cause.NO_ROUTE, "x",
                     fixes=[["ip", "-n", "odd ns", "link", "set", "dev", "a;b", "up"]])
    assert diag.script == ["ip -n 'odd ns' link set dev 'a;b' up"]
    assert diag.to_json()["cause"] == "no-route"


ROUTES = [{"dst": "default", "gateway": "10.0.0.254", "dev": "eth0"},
          {"dst": "10.0.0.0/24", "dev": "tap0", "protocol": "kernel", "prefsrc": "10.0.0.1"},
          {"dst": "10.0.0.0/16", "dev": "tap0", "metric": 100}]


def test_matching_route_is_the_most_specific_on_the_device():
    assert matching_route(ROUTES, "10.0.0.2", "tap0")["dst"] == "10.0.0.0/24"
    assert matching_route(ROUTES, "10.0.5.2", "tap0")["metric"] == 100
    assert matching_route(ROUTES, "192.0.2.1", "eth0")["dst"] == "default"


def test_route_fix_changes_or_adds():
    current = {"dev": "tap0"}
    assert route_fix("ns0", "10.0.0.0/24", "veth0", None, current, ROUTES, "10.0.0.2") == \
        ["ip", "-n", "ns0", "route", "change", "10.0.0.0/24", "dev", "veth0"]
    assert shell_line(route_fix("ns0", "10.0.5.0/24", "veth0", "10.0.0.9", current, ROUTES,
                                "10.0.5.2")) == \
        "ip -n ns0 route add 10.0.5.0/24 via 10.0.0.9 dev veth0"  # the wider /16 stays
    assert route_fix("ns0", "192.0.2.0/24", "veth0", None, {"dev": "eth0"}, ROUTES,
                     "192.0.2.1")[3:5] == ["route", "add"]


PACKETS = (Packet("10.0.0.1", "10.0.0.2", "requests"), Packet("10.0.0.2", "10.0.0.1", "replies"))


def test_iptables_counters_and_policies():
    chains = parse_iptables_save((DATA / "iptables_save_counters.txt").read_text())
    rule = next(c for c in chains if c.name == "INPUT").rules[0]
    assert (rule.verdict, rule.counter, rule.delete) == \
        ("drop", 0, ["iptables", "-t", "filter", "-D", "INPUT", "-p", "icmp", "-j", "DROP"])
    before = parse_iptables_save((DATA / "iptables_save_counters.txt").read_text())
    rule.counter = 2  # the test ping raised it
    drops = find_drops(Place("ns1", "dest"), before, chains, PACKETS)
    assert [(d.chain.name, d.rule is not None, d.confirmed) for d in drops] == \
        [("INPUT", True, True), ("OUTPUT", False, False)]


def test_nft_rules_with_and_without_counters():
    chains = parse_nft(json.loads((DATA / "nft_ruleset.json").read_text()))
    out = next(c for c in chains if c.family == "inet" and c.name == "out")
    assert out.hook == "output" and out.policy == "drop"
    inet = [c for c in chains if c.family == "inet"]  # the ip tables are iptables-nft's
    drops = find_drops(Place("ns1", "dest"), inet, inet, PACKETS)
    found = [(d.rule.delete[-1] if d.rule else "policy", d.packet.what) for d in drops]
    # the counted rule did not count (no test ping hit it); the counter-less icmp rule may match
    assert found == [(out.rules[1].key, "replies")]


def test_root_bridge_br_netfilter_forward_drop_docker():
    chains = parse_iptables_save((DATA / "docker_root_iptables_save.txt").read_text())
    packets = (Packet("172.17.0.2", "172.17.0.3", "requests"),
               Packet("172.17.0.3", "172.17.0.2", "replies"))
    place = Place(None, "bridge", "docker0", call_iptables=True)
    drops = find_drops(place, chains, chains, packets)
    finding = fwread.finding(drops, packets)
    assert finding.cause is Cause.BR_NETFILTER_DROP
    assert shell_line(finding.fixes[0]) == \
        "iptables -t filter -I DOCKER-USER 1 -p icmp -s 172.17.0.2 -d 172.17.0.3 -j ACCEPT"
    assert "the root namespace" in finding.summary
    assert find_drops(Place(None, "bridge", "docker0", False), chains, chains, packets) == []


def test_root_bridge_nf_is_read_from_proc(monkeypatch):
    monkeypatch.setattr(fwread, "BRIDGE_NF", str(DATA / "root_bridge_nf_call_iptables.txt"))
    assert fwread.bridge_nf(None, None) is True
    monkeypatch.setattr(fwread, "BRIDGE_NF", str(DATA / "absent"))
    assert fwread.bridge_nf(None, None) is False
