"""Lab files: valid files become Labs; every problem is reported with file, line and key."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from inprocess import vethwrap

from veth_wrap.model import labfile, shapes
from veth_wrap.model.topology import Kind

ROOT = Path(__file__).resolve().parents[2]

BROKEN = """\
name: demo
namespaces: [a, b, a]
links:
  - between: [a, c]
  - between: [a, b]
    interfaces: [this-name-is-far-too-long, eth0]
    addresses: [10.0.0.1/30, 192.168.1.1/30]
subnet: 10.0.0.0/24
colour: blue
"""


def test_every_problem_reported_at_once_with_line_and_key():
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.parse(BROKEN, "lab.yaml")
    problems = caught.value.problems
    assert caught.value.exit_code == 2
    expected = [
        "lab.yaml:9: colour: unknown key",
        "lab.yaml:2: namespaces[2]: namespace 'a' is listed twice",
        "lab.yaml:4: links[0].between[1]: namespace 'c' is not listed under namespaces",
        "lab.yaml:7: links[1].addresses: 10.0.0.1/30 and 192.168.1.1/30 share no subnet",
        "lab.yaml:6: links[1].interfaces[0]: interface name 'this-name-is-far-too-long'",
    ]
    assert len(problems) == len(expected)
    for want, got in zip(expected, problems):
        assert got.startswith(want), got


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.parse("name: x\nnamespaces: [a, b\n", "bad.yaml")
    assert caught.value.problems[0].startswith("bad.yaml:3: not valid YAML")


def test_duplicate_address_and_interface_names():
    text = ("name: d\nnamespaces: [a, b]\nlinks:\n"
            "  - {between: [a, b], addresses: [10.0.0.1/24, 10.0.0.1/24]}\n"
            "  - [a, b]\n"
            "  - [a, b]\n")
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.parse(text, "d.yaml")
    text = "\n".join(caught.value.problems)
    assert "address 10.0.0.1 is used twice" in text
    assert "two interfaces would be named vw-b in a" in text


def test_explicit_addresses_outside_the_pool_are_taken():
    text = ("name: d\nsubnet: 10.61.0.0/24\nnamespaces: [a, b]\nlinks:\n"
            "  - {between: [a, b], addresses: [10.61.1.1/24, 10.61.1.2/24]}\n")
    lab = labfile.parse(text, "d.yaml")
    assert [e.addresses for e in lab.ends()] == [("10.61.1.1/24",), ("10.61.1.2/24",)]


def test_bridge_file_is_the_cli_bridge_shape():
    lab = labfile.load(ROOT / "examples" / "bridge.yaml", prefix="p")
    cli = shapes.build(["pns0", "pns1", "pns2"], kind=Kind.BRIDGE, subnet="10.0.0.0/24",
                       lab="pbridge")
    assert lab.kind is Kind.CUSTOM
    assert (lab.links, lab.hub, lab.bridges) == (cli.links, cli.hub, cli.bridges)


def test_chain_file_routes_and_forwarding():
    lab = labfile.load(ROOT / "examples" / "chain.yaml", prefix="t-")
    assert lab.members == ("t-a", "t-r", "t-b") and lab.forwarding == ("t-r",)
    assert [(r.netns, r.dest, r.via, r.dev) for r in lab.routes] == [
        ("t-a", "10.0.0.0/24", "10.0.0.2", "vw-t-r"), ("t-b", "10.0.0.0/24", "10.0.0.5", "vw-t-r")]


def test_validate_command_reports_all_problems(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(BROKEN)
    result = vethwrap("validate", "-f", str(path))
    assert result.returncode == 2
    assert f"{path}:4: links[0].between[1]" in result.stderr
    assert f"{path} has 5 problems" in result.stderr
    good = vethwrap("validate", "-f", str(ROOT / "examples" / "campus.yaml"))
    assert good.returncode == 0 and "lab campus is valid: 6 namespaces" in good.stdout


OPTIONS_BROKEN = """\
name: shaped
namespaces: [a, b, c]
links:
  - between: [a, b]
    rate: 10mbit
    mtu: 9000
  - between: [b, c]
    loss: 150%
    direction: sideways
  - between: [a, c]
    mtu: big
"""


def test_link_option_problems_name_line_and_key():
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.parse(OPTIONS_BROKEN, "lab.yaml")
    problems = caught.value.problems
    assert [p.split(" (")[0] for p in problems] == [
        "lab.yaml:9: links[1].direction: 'sideways' is not a direction",
        "lab.yaml:8: links[1].loss: loss 150% is above 100%",
        "lab.yaml:11: links[2].mtu: the MTU is a whole number"]


SHAPED = """\
name: {a}
namespaces: [{a}, {b}]
links:
  - between: [{a}, {b}]
    rate: 8mbit
    mtu: 9000
    direction: a-to-b
"""


def _qdisc_kinds(ns: str, dev: str) -> set:
    shown = subprocess.run(["tc", "-n", ns, "-j", "qdisc", "show", "dev", dev],
                           capture_output=True, text=True, check=True).stdout
    return {q["kind"] for q in json.loads(shown)}


@pytest.mark.integration
def test_link_options_in_a_file_reach_the_kernel(netns, unchanged, tmp_path):
    a, b = netns.name(), netns.name()
    path = tmp_path / "shaped.yaml"
    path.write_text(SHAPED.format(a=a, b=b))
    built = vethwrap("up", "-f", str(path))
    assert built.returncode == 0, built.stderr
    shown = json.loads(vethwrap("show", a, b, "--json").stdout)
    ends = {ns["name"]: ns["interfaces"][0] for lab in shown["labs"] for ns in lab["namespaces"]}
    assert ends[a]["mtu"] == ends[b]["mtu"] == 9000
    assert "tbf" in _qdisc_kinds(a, f"vw-{b}") and "tbf" not in _qdisc_kinds(b, f"vw-{a}")
    gone = vethwrap("down", "-f", str(path), "--json")
    assert gone.returncode == 0 and sorted(json.loads(gone.stdout)["namespaces"]) == sorted([a, b])


def test_a_bridge_on_the_lab_subnet_leaves_the_free_30s_to_links():
    lab = labfile.parse("name: wan\nsubnet: 10.61.0.0/24\nnamespaces: [a1, a2, b1, b2]\n"
                        "links:\n  - between: [a1, b1]\n"
                        "bridges:\n  - name: lan\n    members: [a2, b2]\n")
    by_ns = {end.netns: end.addresses for end in lab.ends() if end.addresses}
    assert by_ns["a2"] == ("10.61.0.1/24",) and by_ns["b2"] == ("10.61.0.2/24",)
    assert by_ns["a1"] == ("10.61.0.5/30",) and by_ns["b1"] == ("10.61.0.6/30",)
