"""IPv6: dual-stack labs ping over IPv6 right after create (nodad); ping -6; diagnose on IPv6."""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest
from conftest import ip
from inprocess import vethwrap

from veth_wrap.compile.create import create_plan
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind
from veth_wrap.run import commands


def test_ipv6_addresses_are_nodad_and_chains_forward_ipv6():
    lab = shapes.build(["ns0", "ns1", "ns2"], kind=Kind.CHAIN, ipv6=True, lab="l6")
    assert lab.versions() == [4, 6]
    assert lab.subnet == f"10.0.0.0/24,{shapes.default_ula('l6')}"
    script = "\n".join(commands.script(create_plan(lab, {})))
    assert "nodad" in script and "net.ipv6.conf.all.forwarding=1" in script
    assert ipaddress.ip_network(shapes.default_ula("l6")).subnet_of(
        ipaddress.ip_network("fc00::/7"))


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["pair", "bridge", "chain"])
def test_dual_stack_labs_ping_over_ipv6_at_once(kind, netns, unchanged):
    members = [netns.name() for _ in range(2 if kind == "pair" else 3)]
    done = vethwrap("create", *members, "-t", kind, "--ipv6", "--lab", members[0], "--json")
    assert done.returncode == 0, done.stderr
    lab = shapes.build(members, kind=Kind(kind), lab=members[0], ipv6=True)
    far = lab.address_of(members[-1], members[0], 6)
    assert ":" in far
    ping = vethwrap("ping", members[0], far, "-c", "1", "--json")
    assert ping.returncode == 0 and json.loads(ping.stdout)["received"] == 1
    by_name = vethwrap("ping", members[0], members[-1], "-6", "-c", "1", "--json")
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout)["destination"] == far
    matrix = json.loads(vethwrap("pingall", *members, "-6", "--json").stdout)
    assert matrix["answered"] == matrix["total"] == len(members) * (len(members) - 1)
    assert all(":" in pair["address"] for pair in matrix["pairs"])
    assert vethwrap("destroy", *members).returncode == 0


@pytest.mark.integration
def test_ipv6_only_subnet(netns, unchanged):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--subnet", "fd00:77::/64").returncode == 0
    assert vethwrap("ping", a, "fd00:77::2", "-c", "1").returncode == 0
    assert vethwrap("ping", a, b, "-6", "-c", "1").returncode == 0
    assert vethwrap("destroy", a, b).returncode == 0


@pytest.mark.integration
def test_ping_6_refuses_what_has_no_ipv6(netns, unchanged):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b).returncode == 0
    for dest in (b, "10.0.0.2"):
        done = vethwrap("ping", a, dest, "-6", "-c", "1")
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert vethwrap("destroy", a, b).returncode == 0


def _diagnose(source: str, address: str) -> dict:
    done = vethwrap("diagnose", source, address, "--json")
    assert done.returncode == 1, done.stderr
    return json.loads(done.stdout)


def _apply(fixes: list[str]) -> None:
    subprocess.run(["sh", "-e"], input="\n".join(fixes) + "\n", text=True, check=True,
                   capture_output=True)


@pytest.mark.integration
def test_diagnose_names_a_missing_ipv6_route_and_a_down_link(netns, unchanged):
    members = [netns.name() for _ in range(3)]
    made = vethwrap("create", *members, "-t", "chain", "--ipv6", "--lab", members[0])
    assert made.returncode == 0
    lab = shapes.build(members, kind=Kind.CHAIN, lab=members[0], ipv6=True)
    first, middle, last = members
    far = lab.address_of(last, first, 6)
    routes = json.loads(ip("-n", first, "-6", "-j", "route", "show").stdout)
    via = next(r for r in routes if r.get("gateway"))
    ip("-n", first, "-6", "route", "del", via["dst"])
    found = _diagnose(first, far)
    assert found["cause"] == "no-route" and far in found["summary"]
    assert found["fix_script"] and all(" -6 " in f or "::" in f for f in found["fix_script"])
    _apply(found["fix_script"])
    assert vethwrap("ping", first, far, "-c", "1").returncode == 0
    # a link set down also loses its IPv6 addresses: the fix puts both back
    ip("-n", middle, "link", "set", f"vw-{last}", "down")
    found = _diagnose(first, far)
    assert found["cause"] == "local-down" and f"vw-{last}" in found["summary"]
    assert any("addr add" in fix for fix in found["fix_script"])
    _apply(found["fix_script"])
    for _ in range(30):  # the re-added address passes duplicate address detection first
        if vethwrap("ping", first, far, "-c", "1", "-W", "0.5").returncode == 0:
            break
    assert vethwrap("diagnose", first, far).returncode == 0
    assert vethwrap("destroy", *members).returncode == 0


@pytest.mark.integration
def test_diagnose_takes_a_namespace_name_for_either_family(netns, unchanged):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--ipv6").returncode == 0
    lab = shapes.build([a, b], lab=a, ipv6=True)
    for extra, address in (((), lab.address_of(b, a, 4)), (("-6",), lab.address_of(b, a, 6))):
        done = vethwrap("diagnose", a, b, "--json", *extra)
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert found["reachable"] and found["destination"] == address
    refused = vethwrap("diagnose", a, "10.0.0.2", "-6")
    assert refused.returncode == 2 and "not an IPv6 address" in refused.stderr
    assert vethwrap("destroy", a, b).returncode == 0


@pytest.mark.integration
def test_show_lists_ipv6_routes_and_create_again_changes_nothing(netns, unchanged):
    a, r, c = (netns.name() for _ in range(3))
    assert vethwrap("create", a, r, c, "-t", "chain", "--ipv6").returncode == 0
    lab = shapes.build([a, r, c], kind=Kind.CHAIN, lab=a, ipv6=True)
    shown = json.loads(vethwrap("show", a, "--json").stdout)
    routes = next(n for group in shown["labs"] for n in group["namespaces"] if n["name"] == a)
    neighbour = lab.address_of(r, a, 6)
    wanted = next(route for route in lab.routes if route.netns == a and ":" in route.dest)
    assert wanted.via == neighbour
    assert {"dst": wanted.dest, "via": neighbour, "dev": f"vw-{r}"} in routes["routes"], routes
    assert not any(route["dst"].startswith("fe80:") for route in routes["routes"])
    assert f"via {neighbour}" in vethwrap("show", a).stdout
    again = vethwrap("create", a, r, c, "-t", "chain", "--ipv6", "--json")  # IPv6 routes are known
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stderr
    assert vethwrap("destroy", a, r, c).returncode == 0
