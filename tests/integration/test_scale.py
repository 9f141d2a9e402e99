"""Bridges of 50, 100 and 1,000 namespaces on real namespaces; no progress bar off a terminal."""

from __future__ import annotations

import json
import os

import pytest
from conftest import RUN_ID, ip

from veth_wrap.check import reach
from veth_wrap.check.rawping import Probe
from veth_wrap.model import names


def members_of(netns, count: int) -> tuple[list[str], str]:
    """count fresh namespace names and a lab name, all cleaned up by the fixture.

    Names stay at 12 characters or fewer so that `vp-NAME` needs no shortening: even six
    hex digits of hash leave 1,000 shortened port names a few-percent chance of a clash.
    """
    names = [f"vt{RUN_ID}k{i}" for i in range(count)]
    netns.names.extend(names)
    return names, netns.name()


def create(cli, members: list[str], lab: str) -> None:
    done = cli("create", *members, "--lab", lab, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["topology"] == "bridge" and len(data["namespaces"]) == len(members)
    # stderr is a pipe here: no progress bar, only talk lines (none contain a bar)
    assert "━" not in done.stderr and "\x1b" not in done.stderr


def destroy(cli, lab: str) -> None:
    done = cli("destroy", "--lab", lab)
    assert done.returncode == 0, done.stderr
    assert "━" not in done.stderr and "\x1b" not in done.stderr


@pytest.mark.integration
def test_bridge_of_20_is_built_by_batches_at_once_and_verified(cli, netns, unchanged):
    members, lab = members_of(netns, 20)
    script = cli("create", *members, "--lab", lab, "--dry-run").stdout
    assert script.count("# inside ") == len(members)  # a step inside each member
    assert script.rindex("# inside ") < script.index("# ports onto ")  # ports join last
    create(cli, members, lab)
    hub, bridge = names.hub_netns(lab), names.bridge_name(lab)
    ports = [link for link in json.loads(ip("-n", hub, "-j", "link", "show").stdout)
             if link["ifname"].startswith("vp-")]
    assert len(ports) == 20
    assert all(p.get("master") == bridge and "LOWER_UP" in p["flags"] for p in ports)
    for i, member in enumerate(members):
        end = json.loads(ip("-n", member, "-j", "-d", "addr", "show", names.member_ifname(lab))
                         .stdout)[0]
        mine = [a["local"] for a in end["addr_info"] if a["family"] == "inet"]
        assert mine == [f"10.0.0.{i + 1}"]
        assert end["ifalias"] == f"vethwrap/{lab}/member/bridge"
    matrix = cli("pingall", *members, "--json")
    assert matrix.returncode == 0, matrix.stderr
    # the name files were written beside the members' wave: every name resolves everywhere
    for member in (members[0], members[-1]):
        found = ip("netns", "exec", member, "getent", "hosts", members[-1], members[0]).stdout
        assert f"10.0.0.20 {members[-1]}" in " ".join(found.split()), found
    destroy(cli, lab)
    assert not [m for m in members if os.path.exists(f"/etc/netns/{m}")]


@pytest.mark.integration
@pytest.mark.slow
def test_bridge_of_100_verifies_and_pings_all(cli, netns, unchanged):
    members, lab = members_of(netns, 100)
    create(cli, members, lab)
    matrix = cli("pingall", *members[:50], "--json")
    assert matrix.returncode == 0, matrix.stderr
    data = json.loads(matrix.stdout)
    assert data["total"] == data["answered"] == 50 * 49
    destroy(cli, lab)


def test_rounds_keep_both_directions_together_and_cover_every_probe():
    names = [f"n{i}" for i in range(40)]
    owner = {f"10.0.0.{i}": name for i, name in enumerate(names)}
    probes = [Probe(a, addr) for a in names for addr, b in owner.items() if a != b]
    waves = reach._rounds(probes, owner, 100)
    assert sorted(i for wave in waves for i in wave) == list(range(len(probes)))
    for wave in waves:
        pairs = {frozenset((probes[i].source, owner[probes[i].destination])) for i in wave}
        assert len(pairs) <= 100 and len(wave) == 2 * len(pairs)


@pytest.mark.integration
@pytest.mark.slow
def test_bridge_of_1000(cli, netns, unchanged):
    members, lab = members_of(netns, 1000)
    create(cli, members, lab)
    shown = cli("show", members[0], members[-1], "--json")
    assert shown.returncode == 0, shown.stderr
    destroy(cli, lab)
