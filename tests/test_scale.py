"""Bridges of 50, 100 and 1,000 namespaces on real namespaces; no progress bar off a terminal."""

from __future__ import annotations

import json

import pytest
from conftest import RUN_ID

from veth_wrap import reach
from veth_wrap.probe import Probe


def members_of(netns, count: int) -> tuple[list[str], str]:
    """count fresh namespace names and a lab name, all cleaned up by the fixture.

    Names stay at 12 characters or fewer so that `vp-NAME` needs no shortening: a 4-hex
    hash is too short to keep 1,000 shortened port names apart.
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
@pytest.mark.slow
def test_bridge_of_100_verifies_and_pings_all(cli, netns, unchanged):
    members, lab = members_of(netns, 100)
    create(cli, members, lab)
    matrix = cli("pingall", *members[:50], "--json")
    assert matrix.returncode == 0, matrix.stderr
    data = json.loads(matrix.stdout)
    assert data["total"] == data["answered"] == 50 * 49
    destroy(cli, lab)


def test_waves_keep_both_directions_together_and_cover_every_probe():
    names = [f"n{i}" for i in range(40)]
    owner = {f"10.0.0.{i}": name for i, name in enumerate(names)}
    probes = [Probe(a, addr) for a in names for addr, b in owner.items() if a != b]
    waves = reach._waves(probes, owner, 100)
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
