"""The tutorial's pair end to end on real namespaces: create, ping, show, destroy."""

from __future__ import annotations

import json

import pytest
from conftest import ip, kernel_snapshot
from inprocess import vethwrap

pytestmark = pytest.mark.integration

PING_KEYS = {"namespace", "destination", "transmitted", "received", "packet_loss", "rtt_ms"}


def link_state(ns: str) -> list[tuple]:
    """Everything about a namespace's links that a no-op create must leave alone."""
    items = json.loads(ip("-n", ns, "-j", "-d", "addr", "show").stdout)
    return sorted((i["ifindex"], i["ifname"], i["operstate"], i.get("ifalias"),
                   tuple(a["local"] for a in i.get("addr_info", []))) for i in items)


def ours(snapshot: tuple[list[str], list[str]], prefix: str) -> tuple[list[str], list[str]]:
    """The part of a kernel snapshot that this test's names could touch (others run too)."""
    return tuple([name for name in names if prefix in name] for names in snapshot)


def ping_json(*args: str) -> tuple[int, dict]:
    proc = vethwrap("ping", *args, "--count", "1", "--json")
    data = json.loads(proc.stdout)
    assert set(data) == PING_KEYS
    assert isinstance(data["packet_loss"], (int, float)) and not isinstance(
        data["packet_loss"], bool)
    assert data["rtt_ms"] is None or set(data["rtt_ms"]) == {"min", "avg", "max", "mdev"}
    return proc.returncode, data


def test_tutorial_pair(unchanged, netns):
    a, b = netns.name(), netns.name()
    made = vethwrap("create", a, b)
    assert made.returncode == 0, made.stderr
    for word in (a, b, f"vw-{a}", f"vw-{b}", "10.0.0.1/24", "10.0.0.2/24", "verified"):
        assert word in made.stdout
    for src, dest, address in ((a, "10.0.0.2", "10.0.0.2"), (b, "10.0.0.1", "10.0.0.1"),
                               (a, b, "10.0.0.2"), (b, a, "10.0.0.1")):
        code, data = ping_json(src, dest)
        assert code == 0 and data["namespace"] == src and data["destination"] == address
        assert data["received"] == 1 and data["packet_loss"] == 0 and data["rtt_ms"]
    text = vethwrap("ping", a, b, "--count", "1")
    assert text.returncode == 0 and f"{a} -> 10.0.0.2: 1/1 replies" in text.stdout
    _check_show(a, b)
    _check_rerun_changes_nothing(a, b)
    gone = vethwrap("destroy", a, b)
    assert gone.returncode == 0, gone.stderr
    assert ours(kernel_snapshot(), netns.prefix) == ours(unchanged, netns.prefix)
    again = vethwrap("destroy", a, b)
    assert again.returncode == 0 and f"{a}: no such namespace, nothing to do" in again.stderr
    assert "nothing of vethwrap's to remove" in again.stderr


def _check_show(a: str, b: str) -> None:
    shown = vethwrap("show", a, b)
    assert shown.returncode == 0 and f"lab {a} (pair)" in shown.stdout
    assert f"{b}:vw-{a}" in shown.stdout and "UP" in shown.stdout
    data = json.loads(vethwrap("show", a, "--json").stdout)
    lab = next(lab for lab in data["labs"] if lab["lab"] == a)
    assert (lab["topology"], lab["hub"], lab["root_links"]) == ("pair", None, [])
    (space,) = lab["namespaces"]  # only the namespace asked for, its peer still found
    assert space["name"] == a and space["created"] is True
    (iface,) = space["interfaces"]
    assert iface["name"] == f"vw-{b}" and iface["role"] == "end"
    assert iface["state"] == "UP" and iface["up"] is True
    assert iface["addresses"] == ["10.0.0.1/24"] and iface["master"] is None
    assert iface["peer"] == {"namespace": b, "interface": f"vw-{a}"}
    assert {"dst": "10.0.0.0/24", "via": None, "dev": f"vw-{b}"} in space["routes"]


def _check_rerun_changes_nothing(a: str, b: str) -> None:
    before = (link_state(a), link_state(b))
    again = vethwrap("create", a, b)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stderr
    assert (link_state(a), link_state(b)) == before


def test_ping_unreachable_exits_1_with_json(unchanged, netns):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--subnet", "192.168.77.0/29", "--no-verify").returncode == 0
    code, data = ping_json(a, "192.168.77.6", "--timeout", "0.5")
    assert code == 1
    assert (data["transmitted"], data["received"], data["packet_loss"], data["rtt_ms"]) \
        == (1, 0, 100, None)
    code, data = ping_json(b, a)
    assert code == 0 and data["destination"] == "192.168.77.1"
    assert vethwrap("destroy", a, b).returncode == 0


def test_namespace_that_existed_before_survives_destroy(unchanged, netns):
    kept, other = netns.make(), netns.name()
    assert vethwrap("create", kept, other).returncode == 0
    gone = vethwrap("destroy", kept, other)
    assert gone.returncode == 0, gone.stderr
    assert ours(kernel_snapshot(), netns.prefix) == ([kept], [])
    left = json.loads(ip("-n", kept, "-j", "-d", "link", "show").stdout)
    assert [(i["ifname"], i.get("ifalias")) for i in left] == [("lo", None)]
    assert "holds nothing of vethwrap's" in vethwrap("destroy", kept).stderr
