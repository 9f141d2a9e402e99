"""IPv6: dual-stack pair, bridge and chain labs ping over IPv6 right after create (nodad)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from veth_wrap import shapes
from veth_wrap.compile import create_plan
from veth_wrap.topology import Kind


def test_ipv6_addresses_are_nodad_and_chains_forward_ipv6():
    lab = shapes.build(["ns0", "ns1", "ns2"], Kind.CHAIN, ipv6=True, lab="l6")
    assert lab.versions() == [4, 6]
    assert lab.subnet == f"10.0.0.0/24,{shapes.default_ula('l6')}"
    script = "\n".join(create_plan(lab, {}).script())
    assert "nodad" in script and "net.ipv6.conf.all.forwarding=1" in script
    assert ipaddress.ip_network(shapes.default_ula("l6")).subnet_of(
        ipaddress.ip_network("fc00::/7"))


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["pair", "bridge", "chain"])
def test_dual_stack_labs_ping_over_ipv6_at_once(kind, netns, cli, unchanged):
    members = [netns.name() for _ in range(2 if kind == "pair" else 3)]
    done = cli("create", *members, "-t", kind, "--ipv6", "--lab", members[0], "--json")
    assert done.returncode == 0, done.stderr
    lab = shapes.build(members, Kind(kind), lab=members[0], ipv6=True)
    far = lab.address_of(members[-1], members[0], 6)
    assert ":" in far
    ping = cli("ping", members[0], far, "-c", "1", "--json")
    assert ping.returncode == 0 and json.loads(ping.stdout)["received"] == 1
    matrix = json.loads(cli("pingall", *members, "-6", "--json").stdout)
    assert matrix["answered"] == matrix["total"] == len(members) * (len(members) - 1)
    assert all(":" in pair["address"] for pair in matrix["pairs"])
    assert cli("destroy", *members).returncode == 0


@pytest.mark.integration
def test_ipv6_only_subnet(netns, cli, unchanged):
    a, b = netns.name(), netns.name()
    assert cli("create", a, b, "--subnet", "fd00:77::/64").returncode == 0
    assert cli("ping", a, "fd00:77::2", "-c", "1").returncode == 0
    assert cli("destroy", a, b).returncode == 0
