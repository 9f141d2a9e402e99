"""Topologies and br_netfilter on the stock kernel: create, pingall, destroy; a diagnosed drop.

Runs inside the stock-kernel guest (see conftest.py): the br_netfilter test loads the module and
sets the guest's root-namespace FORWARD policy and bridge sysctl, and puts all back afterwards.
The --host-bridge labs live here and run one after another; a destroy of other namespaces
leaves them alone (the last test).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from .guest import address, measured, root_links, run, vethwrap, vethwrap_json

pytestmark = pytest.mark.stock_kernel


@pytest.mark.parametrize("topology,count", [("pair", 2), ("bridge", 3), ("chain", 3)])
def test_create_pingall_destroy(names, topology, count):
    spaces = names(count)
    created = vethwrap_json("create", *spaces, "--topology", topology)
    assert created["topology"] == topology and created["verified"], created
    matrix = vethwrap_json("pingall", *spaces, "--count", "1")
    assert matrix["answered"] == matrix["total"] == count * (count - 1), matrix
    vethwrap("destroy", "--lab", spaces[0])
    assert not names.left()


def _forward_rules() -> list[str]:
    return run("iptables", "-S", "FORWARD").stdout.splitlines()


@pytest.fixture
def guest_firewall(request):
    """Puts the guest root namespace's FORWARD chain, bridge sysctl and module back as found."""
    loaded = Path("/sys/module/br_netfilter").exists()
    run("modprobe", "br_netfilter")
    key = "net.bridge.bridge-nf-call-iptables"
    sysctl = run("sysctl", "-n", key).stdout.strip()
    before = _forward_rules()

    def restore():
        after = _forward_rules()
        for rule in after:
            if rule.startswith("-A FORWARD ") and rule not in before:
                run("iptables", "-D", *shlex.split(rule)[1:], check=False)
        for rule in before:
            if rule.startswith("-P FORWARD "):
                run("iptables", *shlex.split(rule), check=False)
        run("sysctl", "-q", "-w", f"{key}={sysctl}", check=False)
        if not loaded:
            run("modprobe", "-r", "br_netfilter", check=False)

    request.addfinalizer(restore)
    return key


def test_br_netfilter_drop_is_diagnosed_and_its_fix_works(names, guest_firewall):
    x, y, z = names(3)
    created = vethwrap_json("create", x, y, z, "--host-bridge")
    for bridge in created["bridges"]:
        names.root_link(bridge["name"])
    assert created["verified"], created
    assert {b["name"] for b in created["bridges"]} <= set(root_links())
    run("iptables", "-P", "FORWARD", "DROP")
    run("sysctl", "-q", "-w", f"{guest_firewall}=1")
    dest = address(created, z)
    found = vethwrap_json("diagnose", x, dest, check=False)
    measured("br_netfilter + FORWARD DROP: diagnose cause",
             {"cause": found["cause"], "fix_script": found["fix_script"]})
    assert not found["reachable"] and found["cause"] == "br-netfilter-drop", found
    assert found["fix_script"], found
    run("sh", "-e", input="\n".join(found["fix_script"]) + "\n")
    pinged = run("ip", "netns", "exec", x, "ping", "-c", "3", "-W", "2", "-i", "0.2", dest,
                 check=False)
    state = [run(*argv, check=False).stdout for argv in (
        ("ip", "-n", x, "-br", "addr"), ("ip", "-n", x, "route"), ("ip", "-br", "link"),
        ("iptables", "-S", "FORWARD"))]
    assert pinged.returncode == 0, (pinged.stdout, pinged.stderr, found, *state)
    vethwrap("destroy", "--lab", x)
    assert not names.left()
    assert not {b["name"] for b in created["bridges"]} & set(root_links())


def test_destroying_other_namespaces_leaves_a_host_bridge_lab_alone(names):
    x, y, z = names(3)
    created = vethwrap_json("create", x, y, z, "--host-bridge")
    bridges = {b["name"] for b in created["bridges"]}
    for bridge in bridges:
        names.root_link(bridge)
    (absent,) = names(1)  # never created: nothing of it to remove
    vethwrap("destroy", absent)
    assert bridges <= set(root_links()), "destroy of another name removed the host bridge"
