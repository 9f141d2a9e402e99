"""Lab files with hosts: parsing with line numbers, VNIs, and each host's share (no kernel)."""

from __future__ import annotations

import pytest
from hosts import WAN

from veth_wrap.compile.create import create_plan
from veth_wrap.errors import UsageError
from veth_wrap.model import hostshare, labfile
from veth_wrap.model.hosts import of_lab
from veth_wrap.model.hostshare import Underlay
from veth_wrap.run import commands


def _problems(text: str) -> list[str]:
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.parse(text, "h.yaml")
    return caught.value.problems


def test_every_namespace_on_exactly_one_host_with_lines():
    text = ("name: x\nhosts:\n  l: {underlay: 192.168.77.1, namespaces: [a, b]}\n"
            "  r: {underlay: 192.168.77.1, namespaces: [b, z], colour: red}\n"
            "namespaces: [a, b, c]\nlinks: [[a, b]]\n")
    problems = _problems(text)
    assert "h.yaml:4: hosts.r.colour: unknown key" in problems[0]
    joined = "\n".join(problems)
    assert "h.yaml:4: hosts.r.namespaces[1]: namespace 'z' is not listed under namespaces" in joined
    assert "h.yaml:4: hosts.r.namespaces: namespace 'b' is on hosts l and r" in joined
    assert "h.yaml:5: namespaces[2]: namespace 'c' is on no host" in joined
    assert "h.yaml:4: hosts.r.underlay: 192.168.77.1 is also the underlay of l" in joined


def test_bad_underlay_port_and_stray_keys():
    text = ("name: x\nvxlan_port: 70000\nhosts:\n  l: {underlay: 10.0.0.1/24, namespaces: [a]}\n"
            "  r: {underlay: 127.0.0.1, namespaces: [b]}\nnamespaces: [a, b]\n")
    joined = "\n".join(_problems(text))
    assert "h.yaml:2: vxlan_port: 70000 is not a UDP port" in joined
    assert "hosts.l.underlay: '10.0.0.1/24' is not an IP address" in joined
    assert "hosts.r.underlay: 127.0.0.1 cannot be an underlay address" in joined
    assert "only means something with hosts" in "\n".join(
        _problems("name: x\nvxlan_port: 1\nnamespaces: [a, b]\n"))


def test_without_hosts_nothing_changes():
    lab = labfile.parse("name: x\nnamespaces: [a, b]\nlinks: [[a, b]]\n")
    assert of_lab(lab) is None and lab.extra == {}


def test_vni_is_deterministic_and_documented():
    lab = labfile.parse(WAN)
    link = hostshare.crossing(lab, of_lab(lab))[0]
    assert hostshare.vni("wan", hostshare.link_key(link)) == 4671791  # the README's number
    assert set(hostshare.check_vnis(lab, of_lab(lab)).values()) == {"link a1-b1", "bridge lan"}
    prefixed = labfile.parse(WAN, prefix="p-")
    assert hostshare.check_vnis(prefixed, of_lab(prefixed)) != hostshare.check_vnis(
        lab, of_lab(lab))


def test_vni_collision_refused(monkeypatch):
    lab = labfile.parse(WAN)
    monkeypatch.setattr(hostshare, "vni", lambda lab, key: 5000)
    with pytest.raises(UsageError, match="would share VNI 5000"):
        hostshare.share(lab, "left", Underlay("eth0", 1500))


def test_share_splits_links_and_sizes_the_stretched_bridge():
    lab = labfile.parse(WAN)
    share = hostshare.share(lab, "right", Underlay("eth1", 9000))
    assert share.members == ("b1", "b2") and share.hub == "vethwrap-wan"
    tunnels = hostshare.tunnels_of(share)
    link, bridge = tunnels
    assert (link.end.netns, link.end.ifname, link.remotes, link.mtu) == (
        "b1", "vw-a1", ("192.168.77.1",), 8950)
    assert link.far == (("left", "a1", "10.61.0.1"),)
    assert bridge.end.master == "lan" and bridge.far == (("left", "a2", "10.61.1.1"),)
    assert {end.opts.mtu for end in share.ends()} == {8950}
    lines = [commands.line(op) for step in create_plan(share, {}).steps for op in step.ops]
    assert ("link add vw-a1 netns b1 mtu 8950 type vxlan id 4671791 local 192.168.77.2 "
            "remote 192.168.77.1 dstport 14789 nolearning dev eth1") in lines
    assert "fdb append 00:00:00:00:00:00 dev vx-wan dst 192.168.77.1" in lines


def test_mtu_above_the_underlay_refused():
    text = WAN.replace("  - between: [a1, b1]", "  - {between: [a1, b1], mtu: 1500}")
    with pytest.raises(UsageError, match="asks for MTU 1500 but the underlay carries 1450"):
        hostshare.share(labfile.parse(text), "left", Underlay("eth0", 1500))


def test_root_bridge_cannot_stretch():
    text = WAN.replace("    subnet: 10.61.1.0/24", "    subnet: 10.61.1.0/24\n    where: root")
    assert "cannot be in the root namespace" in "\n".join(_problems(text))


def test_graph_draws_hosts_as_groups(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "wan.yaml"
    path.write_text(WAN)
    drawn = {fmt: subprocess.run([sys.executable, "-m", "veth_wrap", "graph", "-f", str(path),
                                  "--format", fmt], capture_output=True, text=True).stdout
             for fmt in ("text", "dot", "mermaid")}
    assert "host left (192.168.77.1): a1, a2" in drawn["text"]
    assert "a1 (left) ── vxlan 4671791 ── b1 (right)" in drawn["text"]
    assert 'subgraph cluster_1 { label="host right\\n192.168.77.2"' in drawn["dot"]
    assert 'subgraph h0["host left (192.168.77.1)"]' in drawn["mermaid"]


def test_stdin_file_validates(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "veth_wrap", "validate", "-f", "-"], input=WAN,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "lab wan is valid" in done.stdout
