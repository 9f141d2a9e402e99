"""Parsers fed `ip -j` output recorded on a real machine: state.read, inventory grouping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import RecordingRunner

from veth_wrap.errors import CommandFailed
from veth_wrap.kernel import inventory, state
from veth_wrap.model.names import Mark
from veth_wrap.run.runner import Result

DATA = Path(__file__).parent.parent / "data" / "ip"


def replay(scenario: str) -> RecordingRunner:
    """A runner that answers the recorded batch and the recorded namespace list."""
    out = (DATA / f"{scenario}.out").read_text()
    listing = (DATA / f"{scenario}.netns.json").read_text()

    def answer(argv, stdin):
        return Result(argv, listing if "list" in argv else out, "", 0)

    return RecordingRunner(answer)


def read(scenario: str, namespaces, forwarding=()):
    runner = replay(scenario)
    facts = state.read(namespaces, runner, forwarding=forwarding)
    # The batch state.read sends is exactly the one whose answer was recorded.
    assert runner.calls == [(("ip", "-batch", "-"), (DATA / f"{scenario}.in").read_text())]
    return facts


def test_pair_links_marks_addresses_and_routes():
    facts = read("pair", ["h3p0", "h3p1"])
    lo, end = facts["h3p0"].links["lo"], facts["h3p0"].links["vw-h3p1"]
    assert lo.mark == Mark("h3p0", "netns", "pair") and lo.up and lo.kind == "loopback"
    assert end.kind == "veth" and end.up and end.operstate == "UP" and end.carrier
    assert end.addresses == ("10.0.0.1/24",)  # the fe80:: link-local address is left out
    assert end.mark == Mark("h3p0", "end", "pair") and end.mtu == 1500 and len(end.mac) == 17
    assert facts["h3p1"].links["vw-h3p0"].addresses == ("10.0.0.2/24",)
    assert [(r["dst"], r["dev"]) for r in facts["h3p0"].routes] == [("10.0.0.0/24", "vw-h3p1")]
    assert facts["h3p0"].labs() == {"h3p0"} and facts["h3p0"].address_owner("10.0.0.1/32") \
        == "vw-h3p1"
    assert [link.ifname for link in facts["h3p1"].marked()] == ["vw-h3p0"]


def test_pair_peers_are_found_by_ifindex():
    facts = read("pair", ["h3p0", "h3p1"])
    link = facts["h3p0"].links["vw-h3p1"]
    assert inventory.find_peer(link, "h3p0", facts) == ("h3p1", "vw-h3p0")
    assert inventory.target_address(facts, "h3p0", "h3p1") == "10.0.0.2"
    assert inventory.target_address(facts, "h3p1", "h3p0") == "10.0.0.1"


def test_bridge_hub_ports_and_grouping():
    facts = read("bridge", ["h3b0", "h3b1", "h3b2", "vethwrap-h3bl"])
    hub = facts["vethwrap-h3bl"]
    assert hub.lo_mark == Mark("h3bl", "hub", "bridge")
    assert hub.links["vbr-h3bl"].kind == "bridge"
    assert {name: link.master for name, link in hub.links.items() if name.startswith("vp-")} \
        == {f"vp-h3b{n}": "vbr-h3bl" for n in range(3)}
    assert facts["h3b1"].links["vb-h3bl"].addresses == ("10.0.0.2/24",)
    views = inventory.labs(facts)
    assert list(views) == ["h3bl"]
    view = views["h3bl"]
    assert (view.kind, view.hub, view.members) == ("bridge", "vethwrap-h3bl",
                                                   ["h3b0", "h3b1", "h3b2"])
    assert sorted(view.created) == ["h3b0", "h3b1", "h3b2", "vethwrap-h3bl"]
    member_end = facts["h3b2"].links["vb-h3bl"]
    assert inventory.find_peer(member_end, "h3b2", facts) == ("vethwrap-h3bl", "vp-h3b2")


def test_chain_routes_and_forwarding():
    facts = read("chain", ["h3c0", "h3c1", "h3c2"], forwarding=["h3c1"])
    assert facts["h3c1"].forwarding is True and facts["h3c0"].forwarding is None
    gateways = {(r["dst"], r.get("gateway")) for r in facts["h3c0"].routes}
    assert ("10.0.0.0/24", "10.0.0.2") in gateways
    assert set(facts["h3c1"].links) == {"lo", "vw-h3c0", "vw-h3c2"}
    assert inventory.labs(facts)["h3c0"].members == ["h3c0", "h3c1", "h3c2"]


def test_namespace_that_existed_before_is_a_member_but_not_created():
    facts = read("kept", ["h3e0", "h3e1"])
    assert facts["h3e0"].lo_mark is None and facts["h3e0"].labs() == {"h3e0"}
    view = inventory.labs(facts)["h3e0"]
    assert view.members == ["h3e0", "h3e1"] and view.created == ["h3e1"]


def test_plain_namespace_has_only_lo_down_and_no_lab():
    facts = read("plain", ["h3f0"])
    assert list(facts["h3f0"].links) == ["lo"] and not facts["h3f0"].links["lo"].up
    assert facts["h3f0"].labs() == set() and inventory.labs(facts) == {}


def test_json_stream_and_netns_list():
    docs = list(state.json_stream((DATA / "chain.out").read_text()))
    assert len(docs) == 7 and docs[-1] == 1
    names = state.list_netns(replay("bridge"))
    assert sorted(names) == ["h3b0", "h3b1", "h3b2", "vethwrap-h3bl"]
    assert json.loads((DATA / "plain.netns.json").read_text()) == [{"name": "h3f0"}]


def test_read_drops_a_namespace_deleted_meanwhile_and_retries():
    out = (DATA / "plain.out").read_text()
    gone = 'Cannot open network namespace "h3gone": No such file or directory\n'

    def answer(argv, stdin):
        if "list" in argv:
            return Result(argv, '[{"name":"h3f0"}]', "", 0)
        if "h3gone" in stdin:
            return Result(argv, "", gone + "Command failed -:3\n", 1)
        return Result(argv, out, "", 0)

    facts = state.read(["h3f0", "h3gone"], RecordingRunner(answer))
    assert list(facts) == ["h3f0"]


def test_read_still_fails_on_other_errors():
    runner = RecordingRunner(lambda argv, stdin: Result(argv, "", "Some other failure\n", 1))
    with pytest.raises(CommandFailed):
        state.read(["h3f0"], runner)


def test_ipv6_routes_take_one_more_batch_only_where_a_link_holds_ipv6():
    addrs = {"d0": [{"ifname": "vw-d1", "ifindex": 2, "flags": ["UP"],
                     "ifalias": "vethwrap/d0/end/chain",
                     "addr_info": [{"family": "inet6", "local": "fd00::1", "prefixlen": 126,
                                    "scope": "global"}]}],
             "v4": [{"ifname": "vw-d0", "ifindex": 2, "flags": ["UP"],
                     "ifalias": "vethwrap/d0/end/chain",
                     "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 30,
                                    "scope": "global"}]}]}
    v6 = [{"dst": "fd00::/64", "gateway": "fd00::2", "dev": "vw-d1"},
          {"dst": "fe80::/64", "dev": "vw-d1"}]

    def answer(argv, stdin):
        if "-6" in stdin:
            return Result(argv, json.dumps(v6), "", 0)
        return Result(argv, json.dumps(addrs["d0"]) + "[]" + json.dumps(addrs["v4"]) + "[]",
                      "", 0)

    runner = RecordingRunner(answer)
    facts = state.read(["d0", "v4"], runner)
    assert facts["d0"].routes == v6[:1] and facts["v4"].routes == []  # no link-local route
    assert runner.calls[1] == (("ip", "-batch", "-"), "netns exec d0 ip -j -6 route show\n")
    assert len(runner.calls) == 2
    assert len(read("chain", ["h3c0", "h3c1", "h3c2"], forwarding=["h3c1"])) == 3  # IPv4: one


@pytest.mark.integration
def test_read_skips_a_namespace_that_does_not_exist(netns):
    made, missing = netns.make(), netns.name()
    facts = state.read([missing, made])
    assert list(facts) == [made] and list(facts[made].links) == ["lo"]


def test_peer_is_found_among_many_namespaces_with_the_same_indexes():
    facts = {**read("kept", ["h3e0", "h3e1"]), **read("pair", ["h3p0", "h3p1"])}
    link = facts["h3p0"].links["vw-h3p1"]
    twin = facts["h3e1"].links["vw-h3e0"]
    assert (twin.ifindex, twin.peer_index) == (link.peer_index, link.ifindex)  # a real clash
    assert inventory.find_peer(link, "h3p0", facts) == ("h3p1", "vw-h3p0")
    assert inventory.find_peer(twin, "h3e1", facts) == ("h3e0", "vw-h3e1")
