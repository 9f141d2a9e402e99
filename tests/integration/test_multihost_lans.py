"""Two LANs on two simulated hosts, their routers on a bridge VXLAN stretches between them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import RUN_ID
from hosts import sim_hosts_fixture

pytestmark = pytest.mark.integration
sim_hosts = sim_hosts_fixture()
PREFIX = f"vt{RUN_ID}l"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hosts" / "two-lans.yaml"


def test_two_lans_over_two_hosts_route_through_the_core(sim_hosts, unchanged):
    left, right = sim_hosts.add("left"), sim_hosts.add("right")
    sim_hosts.link(left, right)
    before = {host.name: host.snapshot() for host in (left, right)}
    path = str(EXAMPLE)
    for host in (left, right):
        built = host.vethwrap("up", "-f", path, "--prefix", PREFIX, "--host", host.name)
        assert built.returncode == 0, built.stderr
    a1, b2 = PREFIX + "a1", PREFIX + "b2"
    assert left.vethwrap("ping", a1, "10.62.2.3").returncode == 0  # a1 -> r1 -> r2 -> b2
    assert right.vethwrap("ping", b2, "10.62.1.2").returncode == 0
    matrix = left.vethwrap("pingall", "-f", path, "--prefix", PREFIX, "--json")
    assert matrix.returncode == 0, matrix.stdout + matrix.stderr
    answered = json.loads(matrix.stdout)
    assert answered["answered"] == answered["pairs"].__len__() > 0
    drawn = left.vethwrap("graph", "-f", path).stdout
    assert "bridge core over left, right" in drawn
    for host in (left, right):
        done = host.vethwrap("down", "-f", path, "--prefix", PREFIX, "--host", host.name)
        assert done.returncode == 0, done.stderr
        assert host.snapshot() == before[host.name]


ROOTED = """\
name: rooted
namespaces: [a, r, b, c]
bridges:
  - {name: hostlan1, where: root, subnet: 10.63.1.0/24, members: [r, a]}
  - {name: hostlan2, where: root, subnet: 10.63.2.0/24, members: [r, b, c]}
"""


@pytest.mark.parametrize("how", ["lab", "namespaces"])
def test_lans_in_a_hosts_root_namespace_are_removed_whole(sim_hosts, tmp_path, how, unchanged):
    host = sim_hosts.add("solo")
    path = tmp_path / "rooted.yaml"
    path.write_text(ROOTED)
    before = host.snapshot()
    built = host.vethwrap("up", "-f", str(path), "--prefix", PREFIX)
    assert built.returncode == 0, built.stderr
    assert {"hostlan1", "hostlan2", f"vp1-{PREFIX}b"} <= set(host.links())
    assert host.vethwrap("pingall", "--lab", f"{PREFIX}rooted").returncode == 0
    names = [PREFIX + n for n in ("a", "r", "b", "c")]
    args = ["--lab", f"{PREFIX}rooted"] if how == "lab" else names
    gone = host.vethwrap("destroy", *args)
    assert gone.returncode == 0, gone.stderr
    assert host.snapshot() == before
