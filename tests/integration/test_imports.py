"""containerlab topologies and Kathara labs, built as namespaces, pinged and torn down."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from inprocess import vethwrap

from veth_wrap.model import foreign, labfile

ROOT = Path(__file__).resolve().parents[2]
CLAB = ROOT / "examples" / "clab" / "routed.clab.yml"
KATHARA = ROOT / "examples" / "kathara" / "lab.conf"


def _read(path: Path, prefix: str):
    return foreign.parse(path.read_text(), str(path), prefix, ignore_unsupported=True)


def _ip_json(ns: str, *args: str):
    return json.loads(subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True,
                                     text=True, check=True).stdout)


def _build_ping_down(path: Path, prefix: str, lab) -> None:
    built = vethwrap("up", "-f", str(path), "--prefix", prefix)
    assert built.returncode == 0, built.stderr
    matrix = json.loads(vethwrap("pingall", "--lab", lab.name, "--json").stdout)
    count = len(lab.members)
    assert matrix["answered"] == count * (count - 1), matrix
    again = vethwrap("up", "-f", str(path), "--prefix", prefix)
    assert again.returncode == 0 and "nothing changed" in again.stderr, again.stderr
    matrix = json.loads(vethwrap("pingall", "--lab", lab.name, "--json").stdout)
    assert matrix["answered"] == count * (count - 1), "a second up undid the exec commands"
    down = vethwrap("down", "-f", str(path), "--prefix", prefix)
    assert down.returncode == 0, down.stderr
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed.split() for ns in lab.namespaces())


@pytest.mark.integration
def test_containerlab_file_with_exec_commands_pings_end_to_end(prefixed):
    prefix = prefixed(CLAB)
    lab = _read(CLAB, prefix)
    built = vethwrap("up", "-f", str(CLAB), "--prefix", prefix, "--json")
    assert built.returncode == 0, built.stderr
    assert "images are not used" in built.stderr
    client = f"{prefix}client1"
    addresses = {a["local"] for link in _ip_json(client, "addr", "show", "eth1")
                 for a in link["addr_info"]}
    assert "192.168.10.11" in addresses  # the exec command ran inside the namespace
    assert _ip_json(f"{prefix}server", "link", "show", "eth1")[0]["mtu"] == 1500
    assert vethwrap("down", "-f", str(CLAB), "--prefix", prefix).returncode == 0
    _build_ping_down(CLAB, prefix, lab)


@pytest.mark.integration
def test_kathara_lab_runs_startup_files_and_pings_end_to_end(prefixed):
    prefix = prefixed(KATHARA)
    lab = _read(KATHARA, prefix)
    assert sorted(b.name for b in lab.bridges) == ["A", "B"]
    _build_ping_down(KATHARA, prefix, lab)


SERVICE = """\
name: svc
topology:
  nodes:
    a: {kind: linux, exec: ["ip addr add 10.77.0.1/24 dev eth1", "sleep 600"]}
    b: {kind: linux, exec: ["sh -c 'ip addr add 10.77.0.2/24 dev eth1 && echo $0 done'"]}
  links:
    - endpoints: ["a:eth1", "b:eth1"]
"""


@pytest.mark.integration
def test_exec_that_does_not_end_stays_as_a_service_and_destroy_stops_it(prefixed, cli,
                                                                         tmp_path):
    path = tmp_path / "svc.clab.yml"
    path.write_text(SERVICE)
    prefix = prefixed(path)
    lab = _read(path, prefix)
    built = cli("up", "-f", str(path), "--prefix", prefix)
    assert built.returncode == 0, built.stderr
    assert "sleep 600 still runs, as service exec2-sleep" in built.stderr
    shown = json.loads(vethwrap("ps", "--lab", lab.name, "--json").stdout)
    assert any(p["name"] == "exec2-sleep" for p in shown["processes"]), shown
    assert vethwrap("ping", f"{prefix}a", "10.77.0.2").returncode == 0
    gone = vethwrap("down", "-f", str(path), "--prefix", prefix)
    assert gone.returncode == 0 and "sleep 600" in gone.stderr


@pytest.mark.integration
def test_a_failing_exec_names_the_command_and_exits_1(prefixed, tmp_path):
    path = tmp_path / "bad.clab.yml"
    path.write_text(SERVICE.replace("sleep 600", "ip route add 10.99.0.0/16 via 10.1.1.1"))
    prefix = prefixed(path)
    failed = vethwrap("up", "-f", str(path), "--prefix", prefix)
    assert failed.returncode == 1
    assert "ip route add 10.99.0.0/16 via 10.1.1.1 failed" in failed.stderr
    assert vethwrap("down", "-f", str(path), "--prefix", prefix).returncode == 0


UNSUPPORTED = """\
name: odd
mgmt: {network: custom}
topology:
  nodes:
    a:
      kind: linux
      binds: [/etc:/etc]
      ports: ["8080:80"]
    b: {kind: nokia_srlinux}
    c: {kind: linux}
  links:
    - endpoints: ["a:eth1", "c:eth1"]
    - endpoints: ["a:eth2", "host:veth-a"]
"""


def test_what_a_namespace_cannot_honour_is_named_with_its_line(tmp_path):
    path = tmp_path / "odd.clab.yml"
    path.write_text(UNSUPPORTED)
    refused = vethwrap("validate", "-f", str(path))
    assert refused.returncode == 2
    for line, words in ((2, "mgmt: not supported"), (7, "nodes.a.binds"),
                        (8, "nodes.a.ports"), (9, "nodes.b.kind: 'nokia_srlinux' is not supported"),
                        (13, "links[1]: 'host' is not a linux or bridge node")):
        assert f"{path}:{line}: {words}" in refused.stderr, refused.stderr
    assert "--ignore-unsupported" in refused.stderr
    taken = vethwrap("validate", "-f", str(path), "--ignore-unsupported")
    assert taken.returncode == 0 and "2 namespaces, 1 link" in taken.stdout, taken.stderr


def test_exec_strings_are_split_into_words_never_given_to_a_shell():
    lab = foreign.parse(SERVICE, "svc.clab.yml")
    assert lab.extra["exec"][2] == (
        "b", ("sh", "-c", "ip addr add 10.77.0.2/24 dev eth1 && echo $0 done"))
    broken = SERVICE.replace("sleep 600", "echo 'unclosed")
    with pytest.raises(labfile.LabFileError) as caught:
        foreign.parse(broken, "svc.clab.yml")
    assert caught.value.problems[0].startswith("svc.clab.yml:4: nodes.a.exec[1]")


def test_kathara_options_and_node_folders_are_named(tmp_path):
    (tmp_path / "lab.conf").write_text('a[0]="A"\nb[0]="A"\na[mem]="256m"\nnonsense\n')
    (tmp_path / "b").mkdir()
    with pytest.raises(labfile.LabFileError) as caught:
        foreign.parse((tmp_path / "lab.conf").read_text(), str(tmp_path / "lab.conf"))
    text = "\n".join(caught.value.problems)
    assert "lab.conf:4: not a lab.conf line" in text and "lab.conf:3: a[mem]" in text
    assert "b/: files for the node's container are not copied" in text
    assert shutil.which("sh")


TWO = "name: x\ntopology:\n  nodes: {a: {kind: linux}, b: {kind: linux}}\n"


@pytest.mark.parametrize("text, words", [
    ("", "a containerlab file is a mapping"),
    ("name: x\ntopology: 3\n", "topology: expected a mapping"),
    (TWO + "  links: 5\n", "topology.links: expected a list"),
    (TWO + "  links: [{endpoints: 'a:eth1'}]\n", "expected two endpoints"),
    (TWO + "  links: [{endpoints: [1, 2]}]\n", "1 is not node:interface"),
    (TWO + "  kinds: {linux: 5}\n", "topology.kinds.linux: expected a mapping"),
    (TWO + "  defaults: linux\n", "topology.defaults: expected a mapping"),
    ("name: x\ntopology:\n  nodes: {a: null, b: {kind: linux}}\n", "nodes.a: no kind"),
    (TWO + "  links: [{endpoints: ['a:eth1', 'a:eth2']}]\n", "two different namespaces"),
])
def test_broken_containerlab_files_are_refused_in_one_go(text, words):
    with pytest.raises(labfile.LabFileError) as caught:
        foreign.parse(text, "t.clab.yml", ignore_unsupported=True)
    assert any(words in p for p in caught.value.problems), caught.value.problems


def test_kathara_lab_name_comes_from_lab_name_else_the_folder(tmp_path):
    folder = tmp_path / "my lab"
    folder.mkdir()
    conf = folder / "lab.conf"
    conf.write_text('a[0]="A"\nb[0]="A"\n')
    assert foreign.parse(conf.read_text(), str(conf)).name == "my-lab"
    conf.write_text('LAB_NAME="ospf_simple"\na[0]="A"\nb[0]="A"\n')
    assert foreign.parse(conf.read_text(), str(conf)).name == "ospf_simple"
