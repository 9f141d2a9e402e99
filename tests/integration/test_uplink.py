"""Uplinks, inside a simulated host whose outside is another simulated host (never a real
network): chosen namespaces reach a TCP server outside, others cannot, a host port reaches a
service in the lab, and nothing on the host changes."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
from conftest import RUN_ID
from hosts import sim_hosts_fixture

pytestmark = pytest.mark.integration
sim_hosts = sim_hosts_fixture()
PREFIX = f"vt{RUN_ID}u"

LAB = """\
name: up
namespaces: [a, r, web]
bridges:
  - {name: inner, subnet: 10.81.1.0/24, members: [r, a]}
  - {name: dmz, subnet: 10.81.2.0/24, members: [r, web]}
uplink:
  namespaces: [r]
  forward: ["8080:web:7080"]
"""

SERVE = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(8)
print('ready', flush=True)
while True:
    conn, peer = srv.accept()
    conn.recv(100)  # a request first, as HTTP has
    conn.sendall(sys.argv[3].encode())
    conn.close()
"""

FETCH = """
import socket, sys
try:
    conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    conn.sendall(b"hello")
    print(conn.recv(100).decode())
except OSError as exc:
    print('failed', exc.strerror or exc)
"""


def _serve(host, address: str, port: int, word: str, netns: str = "") -> None:
    inside = ("ip", "netns", "exec", netns) if netns else ()
    import subprocess

    proc = host.start(*inside, sys.executable, "-c", SERVE, address, str(port), word,
                      stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"


def _fetch(host, address: str, port: int, netns: str = "") -> str:
    inside = ("ip", "netns", "exec", netns) if netns else ()
    return host.run(*inside, sys.executable, "-c", FETCH, address, str(port),
                    timeout=60).stdout.strip()


def _host_state(host) -> tuple:
    """What an uplink must leave alone: links, addresses, routes, forwarding, firewall."""
    return (host.snapshot(), host.ip("-br", "addr").stdout, host.ip("route").stdout,
            host.run("sysctl", "-n", "net.ipv4.ip_forward").stdout,
            host.run("nft", "list", "ruleset").stdout)


def _pastas(netns: str) -> list[int]:
    """PIDs of the pasta processes serving a namespace (read from /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().split(b"\0")
        except OSError:
            continue
        if b"--netns" in words and netns.encode() in words and b"--ns-ifname" in words:
            found.append(int(pid))
    return found


def _all_gone(pids: list[int]) -> None:
    """Wait (10 s at most) until none of the gateways runs any more."""
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in pids):
        assert time.monotonic() < deadline, "a gateway outlived its lab"
        time.sleep(0.05)


def test_an_uplink_reaches_outside_and_a_forward_reaches_in(sim_hosts, tmp_path, unchanged):
    lab_host, world = sim_hosts.add("labhost"), sim_hosts.add("world")
    sim_hosts.link(lab_host, world)
    lab_host.ip("route", "add", "default", "via", world.address)  # the host's way out
    _serve(world, world.address, 7000, "outside")
    path = tmp_path / "up.yaml"
    path.write_text(LAB)
    before = _host_state(lab_host)
    planned = lab_host.vethwrap("up", "-f", str(path), "--prefix", PREFIX, "--dry-run")
    assert planned.returncode == 0 and f"--netns {PREFIX}r" in planned.stdout
    built = lab_host.vethwrap("up", "-f", str(path), "--prefix", PREFIX)
    assert built.returncode == 0, built.stderr
    a, r, web = (PREFIX + n for n in ("a", "r", "web"))
    assert _fetch(lab_host, world.address, 7000, r) == "outside"
    assert _fetch(lab_host, world.address, 7000, a).startswith("failed")
    _serve(lab_host, "0.0.0.0", 7080, "inside", web)
    assert _fetch(world, lab_host.address, 8080) == "inside"
    assert lab_host.vethwrap("pingall", "-f", str(path), "--prefix", PREFIX).returncode == 0
    again = lab_host.vethwrap("up", "-f", str(path), "--prefix", PREFIX)
    assert again.returncode == 0 and "nothing changed" in again.stderr, again.stderr
    served = _pastas(r) + _pastas(web)
    assert len(served) == 2
    listed = json.loads(lab_host.vethwrap("ps", "--lab", PREFIX + "up", "--json").stdout)
    assert sorted(p["pid"] for p in listed["processes"] if p["name"] == "uplink") == sorted(served)
    down = lab_host.vethwrap("down", "-f", str(path), "--prefix", PREFIX)
    assert down.returncode == 0, down.stderr
    _all_gone(served)
    assert _host_state(lab_host) == before


def test_create_uplink_from_the_command_line(sim_hosts, unchanged):
    lab_host, world = sim_hosts.add("labhost"), sim_hosts.add("world")
    sim_hosts.link(lab_host, world)
    lab_host.ip("route", "add", "default", "via", world.address)
    _serve(world, world.address, 7001, "outside")
    a, b = PREFIX + "ca", PREFIX + "cb"
    lab_host.ip("netns", "add", b)  # there before: it stays, with nothing of the lab's
    built = lab_host.vethwrap("create", a, b, "--uplink", b)
    assert built.returncode == 0, built.stderr
    assert _fetch(lab_host, world.address, 7001, b) == "outside"
    assert _fetch(lab_host, world.address, 7001, a).startswith("failed")
    shown = lab_host.vethwrap("show", b).stdout
    assert "vwuplink" in shown
    served = _pastas(b)
    assert len(served) == 1
    assert lab_host.vethwrap("destroy", a, b).returncode == 0
    _all_gone(served)
    assert lab_host.netns() == [b]
    assert len(lab_host.ip("-n", b, "-o", "link").stdout.splitlines()) == 1  # lo alone


def test_destroy_all_finds_an_uplinked_lab_from_the_kernel_alone(sim_hosts, tmp_path, unchanged):
    lab_host, world = sim_hosts.add("labhost"), sim_hosts.add("world")
    sim_hosts.link(lab_host, world)
    lab_host.ip("route", "add", "default", "via", world.address)
    path = tmp_path / "up.yaml"
    path.write_text(LAB)
    before = _host_state(lab_host)
    built = lab_host.vethwrap("up", "-f", str(path), "--prefix", PREFIX, "--no-verify")
    assert built.returncode == 0, built.stderr
    served = _pastas(PREFIX + "r") + _pastas(PREFIX + "web")
    path.unlink()  # as after a crash: nothing but the kernel knows the lab
    gone = lab_host.vethwrap("destroy", "--all")  # inside the simulated host only
    assert gone.returncode == 0, gone.stderr
    _all_gone(served)
    assert _host_state(lab_host) == before
