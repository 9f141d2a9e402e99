"""Partitions and heal on real namespaces: who hears whom, heal's exact undo, destroy, diagnose.
The CLI runs in-process, but for the link faults that start services (their own processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import ip
from inprocess import vethwrap

from veth_wrap import api
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind

pytestmark = pytest.mark.integration


def _lab(netns, kind: Kind, count: int):
    spaces = [netns.name() for _ in range(count)]
    lab = shapes.build(spaces, kind=kind, lab=spaces[0])
    api.create(lab)
    return lab


def _heard(lab) -> dict[tuple[str, str], bool]:
    """{(source, target): answered} for every ordered pair and every address of the target."""
    found: dict[tuple[str, str], bool] = {}
    for cell in api.pingall(lab=lab.name, timeout=1.0, count=2):
        key = (cell.source, cell.target)
        found[key] = found.get(key, True) and cell.replied
    return found


def _expected(lab, groups: list[list[str]], oneway: bool = False) -> dict:
    """A pair answers unless source and target are in different groups (one-way: unless one
    of them is in the first group and the other in another: the replies or requests drop)."""
    where = {ns: index for index, group in enumerate(groups) for ns in group}
    found = {}
    for a in lab.members:
        for b in lab.members:
            if a == b:
                continue
            cut = a in where and b in where and where[a] != where[b]
            if oneway:
                cut = cut and 0 in (where[a], where[b])
            found[(a, b)] = not cut
    return found


def _kernel(names: list[str]) -> dict:
    """What heal must give back exactly: nft rulesets, qdiscs and links of each namespace."""
    state = {}
    for ns in names:
        rules = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"],
                               capture_output=True, text=True, check=True).stdout
        links = json.loads(ip("-j", "-n", ns, "link", "show").stdout)
        qdiscs = json.loads(subprocess.run(["tc", "-j", "-n", ns, "qdisc", "show"],
                                           capture_output=True, text=True).stdout or "[]")
        state[ns] = (json.loads(rules)["nftables"][1:], links, qdiscs)
    return state


@pytest.mark.parametrize("kind", [Kind.BRIDGE, Kind.CHAIN, Kind.MESH])
@pytest.mark.parametrize("shape", ["two", "three"])
def test_partitions_cut_exactly_the_pairs_across_groups(netns, kind, shape):
    lab = _lab(netns, kind, 5)
    m = lab.members
    groups = ([[m[0], m[1]], [m[3]]] if shape == "two" else [[m[0]], [m[2]], [m[4]]])
    try:
        assert all(_heard(lab).values())
        done = vethwrap("partition", "--lab", lab.name, *(",".join(g) for g in groups))
        assert done.returncode == 0, done.stderr
        assert "partitioned" in done.stdout
        assert _heard(lab) == _expected(lab, groups)
        healed = vethwrap("heal", "--lab", lab.name)
        assert healed.returncode == 0, healed.stderr
        assert all(_heard(lab).values())
    finally:
        vethwrap("destroy", "--lab", lab.name)


def test_oneway_drops_only_what_the_first_group_sends(netns):
    lab = _lab(netns, Kind.BRIDGE, 3)
    a, b, c = lab.members
    try:
        done = vethwrap("partition", "--oneway", "--lab", lab.name, a, b)
        assert done.returncode == 0, done.stderr
        assert not _udp_arrives(lab, a, b)  # a's datagrams never reach b
        assert _udp_arrives(lab, b, a)  # b's reach a
        assert _udp_arrives(lab, a, c) and _udp_arrives(lab, c, b)  # c was not named
        assert _heard(lab) == _expected(lab, [[a], [b]], oneway=True)
    finally:
        vethwrap("destroy", "--lab", lab.name)


RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5002))
s.settimeout(3); print("ready", flush=True)
try:
    s.recv(100); print("got", flush=True)
except socket.timeout:
    print("nothing", flush=True)
"""
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(10):
    s.sendto(b"x", (sys.argv[1], 5002)); time.sleep(0.1)
"""


def _udp_arrives(lab, sender: str, receiver: str) -> bool:
    """Whether UDP datagrams sent from sender reach receiver (one direction only)."""
    listen = subprocess.Popen(["ip", "netns", "exec", receiver, sys.executable, "-c", RECEIVER],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert listen.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", sender, sys.executable, "-c", SENDER,
                        lab.address_of(receiver, sender)], check=True, timeout=30)
        return listen.stdout.readline().strip() == "got"
    finally:
        listen.kill()
        listen.wait()


def test_heal_gives_back_exactly_the_kernel_state_before(netns, cli):
    lab = _lab(netns, Kind.BRIDGE, 4)
    a, b, c, d = lab.members
    spaces = list(lab.namespaces())
    # a user's own table stays through partition and heal
    subprocess.run(["ip", "netns", "exec", a, "nft", "add", "table", "inet", "mine"], check=True)
    try:
        before = _settled(spaces)
        assert vethwrap("partition", "--lab", lab.name, f"{a},{b}", c).returncode == 0
        flap = cli("link", "flap", d, lab.ends_in(d)[0].ifname, "--down", "0.3s", "--up", "0.3s")
        assert flap.returncode == 0, flap.stderr
        lossy = cli("link", "set", b, lab.ends_in(b)[0].ifname, "--loss", "20%", "--for", "300s")
        assert lossy.returncode == 0, lossy.stderr
        assert _kernel(spaces) != before
        shown = json.loads(vethwrap("show", "--lab", lab.name, "--json").stdout)["labs"][0][
            "faults"]
        assert {p["namespace"] for p in shown["partitions"]} == {a, b, c}
        assert sorted(s["namespace"] for s in shown["services"]) == sorted([b, d])
        healed = vethwrap("heal", "--lab", lab.name, "--json")
        assert healed.returncode == 0, healed.stderr
        report = json.loads(healed.stdout)
        assert len(report["tables"]) == 3 and len(report["stopped"]) == 2
        _wait_for(lambda: _kernel(spaces) == before, "the kernel state of before",
                  lambda: _differences(before, _kernel(spaces)))
        assert vethwrap("heal", "--lab", lab.name).stdout.startswith("no faults")
    finally:
        vethwrap("destroy", "--lab", lab.name)


def _settled(spaces: list[str]) -> dict:
    """The kernel state once it stops changing by itself (a new bridge's operstate goes from
    UNKNOWN to UP a moment after create returns)."""
    previous = _kernel(spaces)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _kernel(spaces)
        if now == previous:
            return now
        previous = now
    raise AssertionError("the lab's kernel state kept changing for 15 s")


def _wait_for(check, what: str, told=lambda: "", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {what} {told()}"
        time.sleep(0.1)


def _differences(before: dict, after: dict) -> list:
    return [(ns, one, two) for ns in before for one, two in zip(before[ns], after[ns])
            if one != two]


def test_partition_dry_run_prints_nft_and_changes_nothing(netns):
    lab = _lab(netns, Kind.CHAIN, 3)
    a, b, c = lab.members
    try:
        before = _settled(list(lab.namespaces()))
        done = vethwrap("partition", "--dry-run", "--lab", lab.name, a, c)
        assert done.returncode == 0, done.stderr
        assert f"ip netns exec {a} nft -f - <<'EOF'" in done.stdout
        assert f'comment "vethwrap/{lab.name}/partition/twoway"' in done.stdout
        assert _kernel(list(lab.namespaces())) == before
    finally:
        vethwrap("destroy", "--lab", lab.name)


def test_destroy_of_a_partitioned_lab_leaves_nothing(netns, cli, unchanged):
    lab = _lab(netns, Kind.BRIDGE, 3)
    a, b, c = lab.members
    assert vethwrap("partition", "--lab", lab.name, a, f"{b},{c}").returncode == 0
    assert cli("link", "flap", b, lab.ends_in(b)[0].ifname, "--down", "1s").returncode == 0
    done = vethwrap("destroy", "--lab", lab.name)
    assert done.returncode == 0, done.stderr
    assert not any(ip("netns", "pids", ns, check=False).stdout for ns in lab.namespaces())


def test_diagnose_names_the_partition_and_its_undo(netns):
    lab = _lab(netns, Kind.BRIDGE, 3)
    a, b, c = lab.members
    try:
        assert vethwrap("partition", "--lab", lab.name, a, b).returncode == 0
        done = vethwrap("diagnose", b, lab.address_of(a, b), "--json")
        assert done.returncode == 1, done.stderr
        found = json.loads(done.stdout)
        assert found["cause"] == "partitioned"
        assert found["summary"].startswith("partitioned by vethwrap (vethwrap heal)")
        assert found["fix_script"] == [f"vethwrap heal --lab {lab.name}"]
        told = vethwrap("diagnose", b, lab.address_of(a, b))
        assert "partitioned by vethwrap (vethwrap heal)" in told.stdout
        assert vethwrap("diagnose", b, lab.address_of(c, b)).returncode == 0  # c was not named
        assert vethwrap("heal", "--lab", lab.name).returncode == 0
        assert vethwrap("diagnose", b, lab.address_of(a, b)).returncode == 0
    finally:
        vethwrap("destroy", "--lab", lab.name)


def test_bad_partitions_are_refused_at_once_and_change_nothing(netns):
    lab = _lab(netns, Kind.BRIDGE, 3)
    a, b, c = lab.members
    try:
        before = _settled(list(lab.namespaces()))
        for args, said in [((a,), "at least two groups"), ((f"{a},{b}", b), "in two groups"),
                           ((a, "nosuchns"), "does not exist"), ((f"{a},", b), "empty name")]:
            began = time.monotonic()
            done = vethwrap("partition", "--lab", lab.name, *args)
            assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1
            assert time.monotonic() - began < 5
        assert _kernel(list(lab.namespaces())) == before
        assert vethwrap("partition", "--lab", lab.name, a, b).returncode == 0
        again = vethwrap("partition", "--lab", lab.name, a, c)
        assert again.returncode == 2 and "partitioned already" in again.stderr
    finally:
        vethwrap("destroy", "--lab", lab.name)


def test_a_table_of_vethwrap_s_name_without_its_mark_is_left_alone(netns):
    lab = _lab(netns, Kind.PAIR, 2)
    a, b = lab.members
    subprocess.run(["ip", "netns", "exec", a, "nft", "add", "table", "inet", "vethwrap"],
                   check=True)
    try:
        done = vethwrap("partition", "--lab", lab.name, b, a)
        assert done.returncode == 2 and "vethwrap did not write" in done.stderr
        assert vethwrap("heal", "--lab", lab.name).stdout.startswith("no faults")
        tables = subprocess.run(["ip", "netns", "exec", a, "nft", "list", "tables"],
                                capture_output=True, text=True).stdout
        assert "table inet vethwrap" in tables
    finally:
        vethwrap("destroy", "--lab", lab.name)


def test_destroy_takes_partitions_out_of_namespaces_that_stay(netns):
    a, b, c = netns.make(), netns.make(), netns.make()  # there before: destroy leaves them
    assert vethwrap("create", a, b, c).returncode == 0
    assert vethwrap("partition", a, f"{b},{c}").returncode == 0  # the lab found from the names
    assert all(_has_table(ns) for ns in (a, b, c))
    done = vethwrap("destroy", "--lab", a)
    assert done.returncode == 0, done.stderr
    assert not any(_has_table(ns) for ns in (a, b, c))
    assert {a, b, c} <= {line.split()[0] for line in ip("netns", "list").stdout.splitlines()}


def _has_table(ns: str) -> bool:
    listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout
    return "table inet vethwrap" in listed
