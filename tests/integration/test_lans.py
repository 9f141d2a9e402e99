"""Labs of several LANs and the routers between them, built on real namespaces."""

from __future__ import annotations

import json
import subprocess

import pytest
from inprocess import vethwrap

from veth_wrap.model import labfile


def _routes(ns: str, dest: str) -> dict:
    shown = subprocess.run(["ip", "-n", ns, "-j", "route", "get", dest], capture_output=True,
                           text=True, check=True).stdout
    return json.loads(shown)[0]


def _names(netns, *labels: str) -> dict:
    """Unique namespace names for the labels; the first names the lab too (the netns
    fixture deletes its hub, vethwrap-LAB, with the rest)."""
    return {label: netns.name() for label in labels}


def _up(tmp_path, text: str, n: dict, name: str = "lab.yaml"):
    path = tmp_path / name
    path.write_text(text.format(**n))
    built = vethwrap("up", "-f", str(path), "--json")
    assert built.returncode == 0, built.stderr
    return path, json.loads(built.stdout)


def _all_green(lab: str, count: int) -> None:
    matrix = json.loads(vethwrap("pingall", "--lab", lab, "--json").stdout)
    assert matrix["answered"] == count * (count - 1), matrix


TWO_LANS = """\
name: {lab}
namespaces: [{a}, {b}, {r}, {c}, {d}]
bridges:
  - {{name: lan1, subnet: 10.71.1.0/24, members: [{r}, {a}, {b}]}}
  - {{name: lan2, subnet: 10.71.2.0/24, members: [{r}, {c}, {d}]}}
"""


@pytest.mark.integration
def test_two_lans_and_a_router(netns, tmp_path, unchanged):
    n = _names(netns, "lab", "a", "b", "r", "c", "d")
    path, built = _up(tmp_path, TWO_LANS, n)
    assert built["verified"] is True
    assert _routes(n["a"], "10.71.2.2")["gateway"] == "10.71.1.1"
    forwarding = subprocess.run(["ip", "netns", "exec", n["r"], "sysctl", "-n",
                                 "net.ipv4.ip_forward"], capture_output=True, text=True).stdout
    assert forwarding.strip() == "1"
    _all_green(n["lab"], 5)
    drawn = vethwrap("graph", "--lab", n["lab"]).stdout
    assert "bridge lan1" in drawn and "bridge lan2" in drawn and "10.71.2.0/24" in drawn
    subprocess.run(["ip", "netns", "exec", n["r"], "sysctl", "-qw", "net.ipv4.ip_forward=0"],
                   check=True)
    found = json.loads(vethwrap("diagnose", n["a"], "10.71.2.2", "--json").stdout)
    assert found["cause"] == "forwarding-disabled", found
    assert vethwrap("down", "-f", str(path)).returncode == 0


LINE = """\
name: {lab}
subnet: 10.72.0.0/16
namespaces: [{h1}, {r1}, {h2}, {r2}, {h3}]
bridges:
  - {{name: left, members: [{h1}, {r1}]}}
  - {{name: middle, members: [{r1}, {h2}, {r2}]}}
  - {{name: right, members: [{r2}, {h3}]}}
"""


@pytest.mark.integration
def test_three_lans_in_a_line(netns, tmp_path, unchanged):
    n = _names(netns, "lab", "h1", "r1", "h2", "r2", "h3")
    path, _ = _up(tmp_path, LINE, n)
    lab = labfile.load(path)
    routes = {(r.netns, r.dest): r.via for r in lab.routes}
    # h2 sits between two routers: a route to each far LAN, not a default
    assert (n["h2"], "default") not in routes and len([k for k in routes if k[0] == n["h2"]]) == 2
    _all_green(n["lab"], 5)
    assert vethwrap("down", "-f", str(path)).returncode == 0


RING = """\
name: {lab}
subnet: 10.73.0.0/16
namespaces: [{r1}, {r2}, {r3}, {r4}, {h1}, {h2}, {h3}, {h4}]
bridges:
  - {{name: lan1, members: [{r1}, {h1}]}}
  - {{name: lan2, members: [{r2}, {h2}]}}
  - {{name: lan3, members: [{r3}, {h3}]}}
  - {{name: lan4, members: [{r4}, {h4}]}}
links:
  - [{r1}, {r2}]
  - [{r2}, {r3}]
  - [{r3}, {r4}]
  - [{r4}, {r1}]
"""


@pytest.mark.integration
def test_a_ring_of_four_routers_takes_shortest_paths_both_ways(netns, tmp_path, unchanged):
    n = _names(netns, "lab", "r1", "r2", "r3", "r4", "h1", "h2", "h3", "h4")
    path, _ = _up(tmp_path, RING, n)
    lab = labfile.load(path)
    address = {ns: lab.address_of(ns) for ns in lab.members}
    # a neighbour's LAN is one hop, never the long way round the ring
    assert _routes(n["r1"], address[n["h2"]])["dev"] == f"vw-{n['r2']}"
    assert _routes(n["r1"], address[n["h4"]])["dev"] == f"vw-{n['r4']}"
    assert _routes(n["r2"], address[n["h1"]])["dev"] == f"vw-{n['r1']}"
    assert _routes(n["r4"], address[n["h1"]])["dev"] == f"vw-{n['r1']}"
    for source, target in ((n["h1"], n["h3"]), (n["h3"], n["h1"]), (n["h2"], n["h4"])):
        pinged = vethwrap("ping", source, target)
        assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    _all_green(n["lab"], 8)
    assert vethwrap("down", "-f", str(path)).returncode == 0


GROWN = """\
name: {lab}
namespaces: [{a}, {b}, {r}, {c}, {d}, {r2}, {e}]
bridges:
  - {{name: lan1, subnet: 10.71.1.0/24, members: [{r}, {a}, {b}]}}
  - {{name: lan2, subnet: 10.71.2.0/24, members: [{r}, {c}, {d}, {r2}]}}
  - {{name: lan3, subnet: 10.71.3.0/24, members: [{r2}, {e}]}}
"""


@pytest.mark.integration
def test_up_of_an_edit_adding_a_lan_and_a_router_applies_the_difference(
        netns, tmp_path, unchanged):
    n = _names(netns, "lab", "a", "b", "r", "c", "d", "r2", "e")
    path, _ = _up(tmp_path, TWO_LANS, n)
    grown = GROWN
    path.write_text(grown.format(**n))
    planned = vethwrap("up", "-f", str(path), "--dry-run")
    assert planned.returncode == 0, planned.stderr
    script = planned.stdout
    # what was there stays: no namespace, bridge or link of the first file is made again
    for old in ("a", "b", "r", "c", "d"):
        assert f"netns add {n[old]}\n" not in script
    assert "link add lan1" not in script and "link add lan2" not in script
    assert "link add lan3" in script and f"netns add {n['e']}" in script
    done = vethwrap("up", "-f", str(path), "--json")
    assert done.returncode == 0, done.stderr
    _all_green(n["lab"], 7)
    again = vethwrap("up", "-f", str(path))
    assert again.returncode == 0 and "nothing changed" in again.stderr
    path.write_text(TWO_LANS.format(**n))  # and back: the LAN and its router go
    shrunk = vethwrap("up", "-f", str(path))
    assert shrunk.returncode == 0, shrunk.stderr
    hub = subprocess.run(["ip", "-n", f"vethwrap-{n['lab']}", "-j", "link", "show"],
                         capture_output=True, text=True, check=True).stdout
    assert "lan3" not in {link["ifname"] for link in json.loads(hub)}
    _all_green(n["lab"], 5)
    assert vethwrap("down", "-f", str(path)).returncode == 0


def _refused(text: str, source: str) -> list[str]:
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.parse(text, source)
    return caught.value.problems


def test_overlapping_lans_are_refused_with_their_lines():
    text = ("name: o\nnamespaces: [a, b, c]\nbridges:\n"
            "  - {name: x, subnet: 10.1.0.0/16, members: [a, b]}\n"
            "  - {name: y, subnet: 10.1.2.0/24, members: [b, c]}\n")
    problems = _refused(text, "o.yaml")
    assert problems[0].startswith("o.yaml:5: bridges[1].members: subnet 10.1.2.0/24"), problems


def test_a_host_with_two_routers_on_its_lan_gets_routes_not_a_default():
    text = ("name: t\nnamespaces: [h, r1, r2, x, y]\nbridges:\n"
            "  - {name: mid, subnet: 10.5.0.0/24, members: [h, r1, r2]}\n"
            "  - {name: west, subnet: 10.6.0.0/24, members: [r1, x]}\n"
            "  - {name: east, subnet: 10.7.0.0/24, members: [r2, y]}\n")
    lab = labfile.parse(text)
    mine = sorted((r.dest, r.via) for r in lab.routes if r.netns == "h")
    assert mine == [("10.6.0.0/24", "10.5.0.2"), ("10.7.0.0/24", "10.5.0.3")]
    assert sorted(lab.forwarding) == ["r1", "r2"]
    assert ("x", "default", "10.6.0.1") in {(r.netns, r.dest, r.via) for r in lab.routes}


def test_routes_given_in_the_file_replace_the_computed_ones():
    text = ("name: t\nnamespaces: [a, r, b]\nbridges:\n"
            "  - {name: l1, members: [a, r]}\n  - {name: l2, members: [r, b]}\n"
            "routes: {}\n")
    lab = labfile.parse(text)
    assert lab.routes == () and lab.forwarding == ("r",)


def test_ipv6_lans_get_ipv6_routes():
    text = ("name: six\nsubnet: fd00:71::/48\nnamespaces: [a, r, b]\nbridges:\n"
            "  - {name: l1, members: [r, a]}\n  - {name: l2, members: [r, b]}\n")
    lab = labfile.parse(text)
    assert {(r.netns, r.dest, r.via) for r in lab.routes} == {
        ("a", "default", "fd00:71::1"), ("b", "default", "fd00:71:0:1::1")}


@pytest.mark.integration
def test_create_lan_shorthand_builds_two_lans_and_a_router(netns, unchanged):
    a, b, r, c, d = (netns.name() for _ in range(5))
    planned = vethwrap("create", "--lan", f"{a},{b},{r}", "--lan", f"{r},{c},{d}", "--dry-run")
    assert planned.returncode == 0 and "link add lan2 type bridge" in planned.stdout
    built = vethwrap("create", "--lan", f"{a},{b},{r}", "--lan", f"{r},{c},{d}",
                "--subnet", "10.74.0.0/16", "--json")
    assert built.returncode == 0, built.stderr
    _all_green(a, 5)
    assert _routes(a, "10.74.1.2")["gateway"] == "10.74.0.3"
    assert vethwrap("destroy", "--lab", a).returncode == 0


def test_lan_shorthand_refusals():
    for args, words in ((["--lan", "a,b", "x"], "does not go with namespaces"),
                        (["--lan", "a,a"], "names a namespace twice"),
                        (["--lan", "a,b", "--lan", "b,c", "--subnet", "10.0.0.0/30"], "no room"),
                        ([], "name the namespaces")):
        refused = vethwrap("create", *args, "--dry-run")
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


SIX = """\
name: {lab}
subnet: fd00:75::/48
namespaces: [{a}, {r}, {b}, {sw}]
bridges:
  - {{name: l1, members: [{r}, {a}]}}
  - {{name: l2, members: [{r}, {b}], where: {sw}}}
"""


@pytest.mark.integration
def test_ipv6_lans_and_a_bridge_in_a_namespace_of_the_file(netns, tmp_path, unchanged):
    n = _names(netns, "lab", "a", "r", "b", "sw")
    path, built = _up(tmp_path, SIX, n)
    assert built["verified"] is True
    shown = subprocess.run(["ip", "-n", n["sw"], "-j", "link", "show", "type", "bridge"],
                           capture_output=True, text=True, check=True).stdout
    assert [link["ifname"] for link in json.loads(shown)] == ["l2"]
    assert _routes(n["a"], "fd00:75:0:1::2")["gateway"] == "fd00:75::1"
    matrix = json.loads(vethwrap("pingall", "--lab", n["lab"], "-6", "--json").stdout)
    assert matrix["answered"] == 6 == len(matrix["pairs"]), matrix  # sw holds no address
    assert vethwrap("down", "-f", str(path)).returncode == 0


def test_unreachable_and_own_gateways_are_refused_with_their_lines():
    text = ("name: g\nnamespaces: [a, b]\nlinks:\n  - [a, b]\nroutes:\n"
            "  a:\n    - {to: 10.9.0.0/16, via: 10.0.0.1}\n"
            "    - {to: 10.8.0.0/16, via: 10.5.5.5}\n")
    problems = [p.split(" (")[0] for p in _refused(text, "g.yaml")]
    assert problems == ["g.yaml:7: routes.a[0].via: 10.0.0.1 is an address of a itself",
                        "g.yaml:8: routes.a[1].via: no interface of a is on a subnet holding "
                        "10.5.5.5"]


def test_routes_behind_one_hop_are_collapsed_and_cover_every_segment_exactly():
    import ipaddress

    names = [f"n{i}" for i in range(64)]
    text = (f"name: c\nsubnet: 10.0.0.0/16\nnamespaces: [{', '.join(names)}]\nlinks:\n"
            + "".join(f"  - [{a}, {b}]\n" for a, b in zip(names, names[1:])))
    lab = labfile.parse(text)
    assert {(r.dest, r.via) for r in lab.routes if r.netns == "n0"} == {("default", "10.0.0.2")}
    mine = [r for r in lab.routes if r.netns == "n1"]
    assert 0 < len(mine) <= 12 and {r.dev for r in mine} == {"vw-n2"}  # not 62
    covered = [ipaddress.ip_network(r.dest) for r in mine]
    for link in lab.links[2:]:  # every segment beyond n1's own is reached, by one route
        net = ipaddress.ip_interface(link.a.addresses[0]).network
        assert sum(net.subnet_of(c) for c in covered) == 1, net
    for link in lab.links[:2]:  # n1's own two links are connected, not routed
        net = ipaddress.ip_interface(link.a.addresses[0]).network
        assert not any(net.overlaps(c) for c in covered), net
