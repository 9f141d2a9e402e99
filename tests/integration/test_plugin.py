"""The pytest plugin: `vethwrap_lab` builds a lab for a test and always removes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_inner_pytest

# Where the package is installed (CI: pip install -e), the pytest11 entry point already gives
# the fixture; importing it here also serves a plain checkout.
from veth_wrap import pytest_plugin

vethwrap_lab = pytest_plugin.vethwrap_lab

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); s.settimeout(20)
print("listening", flush=True)
conn, _ = s.accept(); conn.settimeout(20)
conn.sendall(conn.recv(100).upper()); conn.close()
"""

CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 5001), timeout=10)
c.sendall(b"hello from the client"); print(c.recv(100).decode())
"""


def test_tcp_server_in_one_namespace_client_in_another(vethwrap_lab):
    lab = vethwrap_lab(["srv", "cli"])
    server = lab.popen("srv", [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        client = lab.run("cli", [sys.executable, "-c", CLIENT, lab["srv"]])  # by its name
        assert client.returncode == 0, client.stderr
        assert client.stdout.strip() == "HELLO FROM THE CLIENT"
    finally:
        server.kill()
        server.wait(timeout=10)


def test_lab_from_file(vethwrap_lab):
    lab = vethwrap_lab.from_file(ROOT / "examples" / "chain.yaml")
    result = lab.run("a", ["ip", "-j", "route", "get", lab.address("b")])
    assert result.returncode == 0 and lab["a"].endswith("-a")
    assert '"dev":"vw-' in result.stdout.replace(" ", "")


INNER = """
import subprocess


def test_fails_after_building(vethwrap_lab):
    lab = vethwrap_lab(["x", "y", "z"])
    open("names.txt", "w").write("\\n".join(lab.lab.namespaces()))
    open("lab.txt", "w").write(lab.lab.name)
    server = lab.popen("x", ["sleep", "600"])
    service = lab.start("y", ["sleep", "600"], name="nap")
    stray = subprocess.Popen(["ip", "netns", "exec", lab["z"], "sleep", "600"])
    open("pids.txt", "w").write(f"{server.pid} {service.pid} {stray.pid}")
    assert False, "this test fails on purpose"
"""


def test_lab_is_removed_even_when_the_test_fails(tmp_path):
    result = run_inner_pytest(tmp_path, INNER)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "this test fails on purpose" in result.stdout
    made = (tmp_path / "names.txt").read_text().split()
    assert len(made) == 4 and made[-1].startswith("vethwrap-")  # three members and the hub
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not set(made) & {line.split()[0] for line in listed.splitlines() if line}
    for pid in (tmp_path / "pids.txt").read_text().split():  # popen, start, and by hand
        assert not _running(int(pid)), pid
    name = (tmp_path / "lab.txt").read_text()
    assert not os.path.exists(f"/run/vethwrap/logs/{name}")  # the service's log went too
    assert not any(os.path.exists(f"/etc/netns/{ns}") for ns in made)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_entry_point_is_declared():
    text = (ROOT / "setup.cfg").read_text()
    assert "pytest11 =\n    vethwrap = veth_wrap.pytest_plugin" in text


def test_python_api_build_plan_create_verify_destroy(netns):
    import veth_wrap

    first, second = netns.name(), netns.name()
    lab = veth_wrap.build([first, second], lab=first)
    assert not veth_wrap.plan(lab).empty
    built = veth_wrap.create(lab)
    assert built.changed and built.report.ok
    assert veth_wrap.plan(lab).empty  # a second build has nothing to do
    assert veth_wrap.verify(lab).ok
    removed = veth_wrap.destroy(lab=lab.name)
    assert not removed.empty
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert first not in listed.split() and second not in listed.split()


def test_python_api_pingall_probes_every_ordered_pair(netns):
    import veth_wrap
    from veth_wrap.errors import UsageError

    members = [netns.name() for _ in range(3)]
    lab = veth_wrap.build(members, lab=members[0])
    built = veth_wrap.create(lab)
    try:
        cells = veth_wrap.pingall(lab=lab.name)
        pairs = {(a, b) for a in members for b in members if a != b}
        assert {(c.source, c.target) for c in cells} == pairs and len(cells) == 6
        assert all(c.replied and c.rtt_ms is not None for c in cells)
        assert all(c.address == lab.address_of(c.target, c.source).split("/")[0]
                   for c in cells)
        some = veth_wrap.pingall(members[:2])
        assert {(c.source, c.target) for c in some} == {(members[0], members[1]),
                                                       (members[1], members[0])}
        subprocess.run(["ip", "-n", members[2], "link", "set", lab.ends_in(members[2])[0].ifname,
                        "down"], check=True)
        broken = veth_wrap.pingall(lab=lab.name)
        assert {(c.source, c.target) for c in broken if not c.replied} == {
            pair for pair in pairs if members[2] in pair}
        with pytest.raises(UsageError, match="no lab"):
            veth_wrap.pingall(lab=lab.name + "x")
    finally:
        veth_wrap.api.destroy_built(built)
