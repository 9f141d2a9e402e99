"""Quiet labs: without --ipv6 no end gets an IPv6 address and nothing sends but the probes."""

from __future__ import annotations

import json
import time

import pytest
from conftest import ip
from inprocess import vethwrap

SETTLE = 1.5  # seconds: DAD, router solicitations and MLD reports all start within this


def _links(namespace: str) -> list[dict]:
    return json.loads(ip("-n", namespace, "-s", "-j", "addr", "show").stdout)


def _lab_links(namespaces: list[str]) -> dict[tuple[str, str], dict]:
    """Every link but lo in the given namespaces, by (namespace, name)."""
    return {(ns, item["ifname"]): item for ns in namespaces for item in _links(ns)
            if item["ifname"] != "lo"}


def _tx(links: dict) -> dict[tuple[str, str], int]:
    return {key: item["stats64"]["tx"]["packets"] for key, item in links.items()}


def _ipv6(links: dict) -> dict[tuple[str, str], list[str]]:
    found = {key: [a["local"] for a in item.get("addr_info", []) if a["family"] == "inet6"]
             for key, item in links.items()}
    return {key: addresses for key, addresses in found.items() if addresses}


def _spaces(members: list[str], kind: str) -> list[str]:
    return members + ([f"vethwrap-{members[0]}"] if kind == "bridge" else [])


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["pair", "bridge", "chain"])
def test_an_ipv4_lab_has_no_ipv6_address_and_sends_nothing(kind, netns, unchanged):
    members = [netns.name() for _ in range(2 if kind == "pair" else 3)]
    done = vethwrap("create", *members, "-t", kind, "--lab", members[0], "--no-verify", "-q")
    assert done.returncode == 0, done.stderr
    time.sleep(SETTLE)
    links = _lab_links(_spaces(members, kind))
    assert len(links) >= len(members)
    assert _ipv6(links) == {}
    assert _tx(links) == {key: 0 for key in links}, "a lab nobody uses sent packets"
    assert vethwrap("destroy", "--lab", members[0], "-q").returncode == 0


@pytest.mark.integration
def test_a_verified_bridge_sends_the_probes_and_then_nothing(netns, unchanged):
    members = [netns.name() for _ in range(4)]
    done = vethwrap("create", *members, "--lab", members[0], "--json")
    assert done.returncode == 0, done.stderr
    probes = json.loads(done.stdout)["probes"]
    spaces = _spaces(members, "bridge")
    after = _tx(_lab_links(spaces))
    ends = {key: count for key, count in after.items() if key[0] in members}
    # each probe is at most one ARP request and a few echo requests, and one reply each way
    assert all(0 < count <= 4 * probes for count in ends.values()), ends
    time.sleep(SETTLE)
    links = _lab_links(spaces)
    assert _ipv6(links) == {}
    assert _tx(links) == after, "the lab sent packets of its own after verification"
    assert vethwrap("destroy", "--lab", members[0], "-q").returncode == 0


@pytest.mark.integration
def test_a_dual_stack_lab_keeps_its_link_local_addresses(netns, unchanged):
    members = [netns.name() for _ in range(3)]
    done = vethwrap("create", *members, "--ipv6", "--lab", members[0], "-q")
    assert done.returncode == 0, done.stderr
    links = _lab_links(members)
    local = {key: [a for a in addresses if a.startswith("fe80:")]
             for key, addresses in _ipv6(links).items()}
    assert all(local.get(key) for key in links), local  # NDP and routers as IPv6 expects
    assert vethwrap("destroy", "--lab", members[0], "-q").returncode == 0
