"""The dry run: quoted commands only, no root needed, and `| sh -e` builds what create builds."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

import nobody
import pytest
from conftest import ip, kernel_snapshot
from inprocess import vethwrap

from veth_wrap.model.names import p2p_ifname

pytestmark = pytest.mark.integration

FILE_STEPS = ("mkdir", "tee", "rm", "rmdir")  # the lab's name files
VOLATILE = {"ifindex", "link_index", "address", "broadcast", "link_netnsid", "addr_info"}


def only_commands(script: str) -> list[list[str]]:
    """Check that a dry run is commands, `#` lines and here-documents; return the commands."""
    commands, lines = [], iter(script.splitlines())
    for line in lines:
        if line.startswith("#"):
            continue
        words = shlex.split(line.replace("<<'EOF'", ""))
        assert words[0] in ("ip", "tc") + FILE_STEPS, line
        commands.append(words)
        if line.endswith("<<'EOF'"):
            body = list(iter(lines.__next__, "EOF"))
            # a batch's lines are commands; tee's are the name file it writes
            assert body and (words[0] == "tee" or all(shlex.split(item) for item in body))
    return commands


def sh(script: str) -> None:
    subprocess.run(["sh", "-e"], input=script, text=True, check=True, capture_output=True)


def normalised(namespaces: list[str], names: dict[str, str]) -> dict:
    """The `ip -j` state of namespaces, ifindex/mac aside, with test names replaced."""
    text = ""
    for ns in namespaces:
        links = json.loads(ip("-n", ns, "-j", "-d", "addr", "show").stdout)
        for link in links:
            link["addresses"] = sorted(
                (a["family"], a["local"], a["prefixlen"], a.get("scope"))
                for a in link.get("addr_info", []) if a.get("scope") != "link")
        links = [{k: v for k, v in link.items() if k not in VOLATILE} for link in links]
        routes = json.loads(ip("-n", ns, "-j", "route", "show", "table", "all").stdout)
        text += json.dumps([links, routes], sort_keys=True) + "\n"
    names = {**names, **{p2p_ifname(name): f"vw-{alias}" for name, alias in names.items()}}
    for name, placeholder in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(name, placeholder)
    return text


def settled(namespaces: list[str], deadline: float = 10.0) -> None:
    """Wait until every veth is UP: the kernel reports carrier a moment after `link set up`."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        links = [i for ns in namespaces
                 for i in json.loads(ip("-n", ns, "-j", "link", "show").stdout)]
        if all(i["operstate"] in ("UP", "UNKNOWN") for i in links):
            return
        time.sleep(0.05)


def test_dry_run_script_builds_what_create_builds(unchanged, netns):
    a, b, c, d = (netns.name(tag) for tag in "abcd")
    dry = vethwrap("create", a, b, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    commands = only_commands(dry.stdout)
    assert len([w for w in commands if w[0] == "ip"]) == 3
    assert [w[0] for w in commands if w[0] != "ip"] == ["mkdir", "tee"]  # the name files
    assert a not in kernel_snapshot()[0]
    sh(dry.stdout)
    assert f"10.0.0.2\t{b}" in open(f"/etc/netns/{a}/hosts").read()
    real = vethwrap("create", c, d)
    assert real.returncode == 0, real.stderr
    settled([a, b, c, d])
    scripted = normalised([a, b], {a: "NS1", b: "NS2"})
    assert "vethwrap/NS1/end/pair" in scripted and "10.0.0.2" in scripted
    assert scripted == normalised([c, d], {c: "NS1", d: "NS2"})
    shown = json.loads(vethwrap("show", a, "--json").stdout)["labs"]
    assert [lab["lab"] for lab in shown] == [a]
    undo = vethwrap("destroy", a, b, "--dry-run")
    assert undo.returncode == 0 and only_commands(undo.stdout)
    assert {a, b} <= set(kernel_snapshot()[0])
    sh(undo.stdout)
    assert not os.path.exists(f"/etc/netns/{a}")
    assert vethwrap("destroy", c, d).returncode == 0
    assert not {a, b, c, d} & set(kernel_snapshot()[0])


def test_dry_run_needs_no_root_and_prints_only_commands(unchanged, netns):
    a, b = netns.name(), netns.name()
    as_nobody = nobody.run("create", a, b, "--dry-run")
    assert as_nobody.returncode == 0, as_nobody.stderr
    assert [words[:4] for words in only_commands(as_nobody.stdout)] == [
        # b added and marked, then a, whose step (first to need it) marks it and makes the link
        ["ip", "-batch", "-"], ["ip", "-n", a, "-batch"], ["ip", "-n", b, "-batch"],
        ["mkdir", "-p", "--", f"/etc/netns/{a}"],
        ["tee", "--", f"/etc/netns/{a}/hosts", f"/etc/netns/{b}/hosts"]]  # one content, one tee
    assert as_nobody.stdout == vethwrap("create", a, b, "--dry-run").stdout
    bridged = nobody.run("create", a, b, netns.name(), "-t", "chain", "-n")
    assert bridged.returncode == 0 and only_commands(bridged.stdout)
    assert not {a, b} & set(kernel_snapshot()[0])
