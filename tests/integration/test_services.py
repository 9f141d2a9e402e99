"""Software in a lab, on real namespaces: run, ps, stop, logs, capture, and a destroy that
no process outlives. Every process a test starts is killed by PID in a finaliser.

The CLI runs in-process (vethwrap); a process of its own (the cli fixture) where the process
is what is tested: services that outlive the command that started them, exec, --follow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import RUN_ID, kernel_snapshot
from inprocess import vethwrap

from veth_wrap.model.names import p2p_ifname

pytestmark = pytest.mark.integration

SERVER = ("import http.server, sys; http.server.HTTPServer(('', int(sys.argv[1])), "
          "http.server.SimpleHTTPRequestHandler).serve_forever()")
FETCH = ("import sys, urllib.request; "
         "print(urllib.request.urlopen(sys.argv[1], timeout=5).status)")
STUBBORN = "trap 'echo got-term' TERM; while :; do sleep 0.1; done"  # ignores SIGTERM


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def running(pid: int) -> bool:
    """True while pid exists and is not a zombie (one that init has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def netns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def all_netns() -> set[str]:
    """The network namespace of every process on the machine."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            link = netns_of(int(entry))
            if link:
                found.add(link)
    return found


def inode_of(name: str) -> str:
    return f"net:[{os.stat(f'/run/netns/{name}').st_ino}]"


def service_cgroups(*namespaces: str) -> list[str]:
    """The service cgroups of these namespaces that exist."""
    from veth_wrap.model.servicespec import parse_cgroup_name
    from veth_wrap.run import cgroups

    return [f for f in cgroups.services() if parse_cgroup_name(f)[1] in namespaces]


@pytest.fixture
def pids(request):
    """Register the PIDs a test starts; each still running is SIGKILLed at the end, by PID."""
    started: dict[int, str | None] = {}

    def add(pid: int) -> int:
        started[pid] = start_time(pid)
        return pid

    def kill_all():
        for pid, began in started.items():
            if began is not None and start_time(pid) == began:  # the same process, not a reuse
                os.kill(pid, signal.SIGKILL)

    request.addfinalizer(kill_all)
    return add


@pytest.fixture
def by_hand(pids, request):
    """Start a command with `ip netns exec` (not vethwrap), registered for the finaliser."""
    procs = []

    def start(ns: str, *argv: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        pids(proc.pid)
        deadline = time.monotonic() + 5
        while netns_of(proc.pid) != inode_of(ns) and time.monotonic() < deadline:
            time.sleep(0.01)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def run_json(cli, pids, *args: str) -> dict:
    """`vethwrap run --json` in a process of its own, which the service must outlive."""
    done = cli("run", *args[:1], "--json", *args[1:])
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    pids(info["pid"])
    return info


def test_server_answers_by_name_ps_stop_and_logs(unchanged, netns, cli, pids, by_hand):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b).returncode == 0
    try:
        info = run_json(cli, pids, b, "--name", "web", "--wait-port", "8731", "--",
                        sys.executable, "-c", SERVER, "8731")
        assert info["name"] == "web" and info["namespace"] == b
        assert oct(os.stat(info["log"]).st_mode & 0o777) == "0o600"
        # at once, by the lab's name, from the other namespace
        fetched = cli("exec", a, "--", sys.executable, "-c", FETCH, f"http://{b}:8731/")
        assert fetched.returncode == 0 and fetched.stdout.strip() == "200", fetched.stderr
        hand = by_hand(a, "sleep", "300")
        listed = json.loads(vethwrap("ps", "--json").stdout)["processes"]
        mine = {p["pid"]: p for p in listed}
        assert mine[info["pid"]]["name"] == "web" and mine[info["pid"]]["namespace"] == b
        assert mine[hand.pid]["namespace"] == a and mine[hand.pid]["command"] == ["sleep", "300"]
        table = vethwrap("ps", a, b)
        assert "web" in table.stdout and str(hand.pid) in table.stdout
        again = vethwrap("run", b, "--name", "web", "--", "sleep", "1")
        assert again.returncode == 2 and "already runs" in again.stderr
        log = vethwrap("logs", b, "web")
        assert log.returncode == 0 and '"GET / HTTP/1.1" 200' in log.stdout
        stopped = vethwrap("stop", b, "web", "--grace", "5")
        assert stopped.returncode == 0 and "SIGTERM" in stopped.stdout
        assert not running(info["pid"])
        by_pid = vethwrap("stop", a, str(hand.pid))
        assert by_pid.returncode == 0 and hand.wait(timeout=5) is not None
        assert vethwrap("stop", a, "nothing-here").returncode == 2
    finally:
        assert vethwrap("destroy", a, b).returncode == 0


def test_service_that_dies_early_or_never_listens(unchanged, netns, cli, pids):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b).returncode == 0
    try:
        died = vethwrap("run", a, "--name", "boom", "--wait-port", "8732", "--",
                   "sh", "-c", "echo cannot bind here >&2; exit 3")
        assert died.returncode == 1, died.stderr
        assert "cannot bind here" in died.stderr and "exit status 3" in died.stderr
        began = time.monotonic()
        slow = vethwrap("run", a, "--name", "mute", "--wait-port", "8733", "--wait-timeout", "0.5",
                   "--", "sleep", "300")
        assert slow.returncode == 1 and "within 0.5 s" in slow.stderr
        assert time.monotonic() - began < 10
        assert "mute" not in vethwrap("ps", a).stdout  # stopped, not left behind
        ticking = run_json(cli, pids, a, "--name", "tick", "--", "sh", "-c",
                           "echo one; sleep 0.5; echo two")
        followed = cli("logs", a, "tick", "--follow")  # returns once the service has ended
        assert followed.returncode == 0 and followed.stdout == "one\ntwo\n"
        assert not running(ticking["pid"])
        assert vethwrap("run", a, "--", "no-such-program-x9").returncode == 2
        assert vethwrap("run", a, "--env", "NOEQUALS", "--", "true").returncode == 2
        decoy = netns.make()
        outside = vethwrap("run", decoy, "--", "sleep", "1")
        assert outside.returncode == 2 and "not part of a vethwrap lab" in outside.stderr
    finally:
        assert vethwrap("destroy", a, b).returncode == 0


def test_destroy_of_a_bridge_lab_leaves_no_namespace_alive(unchanged, netns, cli, pids, by_hand):
    members = [netns.name() for _ in range(3)]
    hub = f"vethwrap-{members[0]}"
    assert vethwrap("create", *members).returncode == 0
    try:
        lab_inodes = {inode_of(ns) for ns in members + [hub]}
        started = [run_json(cli, pids, ns, "--", "sleep", "600")["pid"] for ns in members + [hub]]
        stubborn = by_hand(members[1], "sh", "-c", STUBBORN)
        assert lab_inodes <= all_netns()
        dry = vethwrap("destroy", "--lab", members[0], "--dry-run")
        assert dry.returncode == 0 and all(f"pid {pid}" in dry.stdout for pid in started)
        assert all(running(pid) for pid in started)  # the dry run stopped nothing
        began = time.monotonic()
        done = vethwrap("destroy", "--lab", members[0], "--grace", "0.5", "--json")
        assert done.returncode == 0, done.stderr
        stopped = {item["pid"]: item["signal"] for item in json.loads(done.stdout)["stopped"]}
        assert set(started) | {stubborn.pid} <= set(stopped)
        assert stopped[stubborn.pid] == "SIGKILL" and stopped[started[0]] == "SIGTERM"
        assert time.monotonic() - began < 10
        assert not lab_inodes & all_netns()  # no network namespace of the lab is alive
        assert not any(os.path.exists(f"/etc/netns/{ns}") for ns in members + [hub])
        assert not os.path.exists(f"/run/vethwrap/logs/{members[0]}")
    finally:
        vethwrap("destroy", "--lab", members[0])


def test_foreign_and_preexisting_namespaces_keep_their_processes(unchanged, netns, by_hand):
    decoy, before, new = netns.make(), netns.make(), netns.name()
    assert vethwrap("create", before, new).returncode == 0
    try:
        in_decoy = by_hand(decoy, "sleep", "300")
        in_before = by_hand(before, "sleep", "300")
        in_new = by_hand(new, "sleep", "300")
        # --all is never run for real here: it would remove other runs' labs on this machine.
        # Its dry run reads the same selection and changes nothing.
        everything = vethwrap("destroy", "--all", "--dry-run")
        assert everything.returncode == 0
        assert f"pid {in_new.pid}" in everything.stdout
        assert f"pid {in_decoy.pid}" not in everything.stdout
        assert f"pid {in_before.pid}" not in everything.stdout
        assert vethwrap("destroy", "--lab", before).returncode == 0
        assert in_new.wait(timeout=5) is not None
        assert in_decoy.poll() is None and in_before.poll() is None
        assert netns_of(in_before.pid) == inode_of(before)
        assert not os.path.exists(f"/etc/netns/{before}/hosts")  # vethwrap wrote that one
    finally:
        vethwrap("destroy", "--lab", before)


def test_a_name_file_vethwrap_did_not_write_is_left_alone(unchanged, netns):
    a, b = netns.name(), netns.name()
    os.makedirs(f"/etc/netns/{a}")
    try:
        with open(f"/etc/netns/{a}/hosts", "w") as f:
            f.write("10.9.9.9 mine\n")
        made = vethwrap("create", a, b)
        assert made.returncode == 0 and "was not written by vethwrap" in made.stderr
        assert open(f"/etc/netns/{a}/hosts").read() == "10.9.9.9 mine\n"
        assert f"10.0.0.1\t{a}" in open(f"/etc/netns/{b}/hosts").read()
        assert vethwrap("destroy", a, b).returncode == 0
        assert open(f"/etc/netns/{a}/hosts").read() == "10.9.9.9 mine\n"
        assert not os.path.exists(f"/etc/netns/{b}")
    finally:
        vethwrap("destroy", a, b)
        for path in (f"/etc/netns/{a}/hosts", f"/etc/netns/{a}"):
            if os.path.isdir(path):
                os.rmdir(path)
            elif os.path.exists(path):
                os.unlink(path)


def test_capture_records_the_pings_in_a_pcap(unchanged, netns, cli, pids, tmp_path):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b).returncode == 0
    pcap = tmp_path / "pings.pcap"
    try:
        interface = p2p_ifname(b)
        started = cli("capture", a, interface, "-w", str(pcap), "--filter", "icmp",
                      "--background", "--json")
        assert started.returncode == 0, started.stderr
        pid = pids(json.loads(started.stdout)["pid"])
        for _ in range(5):  # a loaded host may start capturing a moment after it says so
            assert vethwrap("ping", b, a, "--count", "3").returncode == 0
            read = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True,
                                  text=True)
            if read.stdout.count("ICMP echo reply") >= 3:
                break
        assert vethwrap("stop", a, f"capture-{interface}").returncode == 0
        assert not running(pid)
        read = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True)
        assert read.returncode == 0, read.stderr
        assert read.stdout.count("ICMP echo request") >= 3
        assert read.stdout.count("ICMP echo reply") >= 3
        bad = vethwrap("capture", a, "nosuchif0")
        assert bad.returncode == 2 and "no interface" in bad.stderr
    finally:
        assert vethwrap("destroy", a, b).returncode == 0


def test_kill_9_of_destroy_part_way_then_destroy_again(unchanged, netns, cli, pids):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b).returncode == 0
    try:
        info = run_json(cli, pids, a, "--name", "stubborn", "--", "sh", "-c", STUBBORN)
        # a service that ended on its own leaves its cgroup empty: destroy removes it too
        brief = run_json(cli, pids, b, "--name", "brief", "--", "sleep", "600")
        os.kill(brief["pid"], signal.SIGKILL)
        assert len(service_cgroups(a, b)) == 2
        lab_inodes = {inode_of(a), inode_of(b)}
        env = dict(os.environ, NO_COLOR="1")
        first = subprocess.Popen([sys.executable, "-m", "veth_wrap", "destroy", a, b,
                                  "--grace", "60"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        pids(first.pid)
        deadline = time.monotonic() + 30
        while "got-term" not in open(info["log"]).read():  # destroy is in its grace period
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        first.kill()
        first.wait(timeout=10)
        assert running(info["pid"])  # the service outlived the killed destroy
        again = vethwrap("destroy", a, b, "--grace", "0.5")
        assert again.returncode == 0, again.stderr
        assert "SIGKILL" in again.stderr
        assert not lab_inodes & all_netns()
        assert not {a, b} & set(kernel_snapshot()[0])
        assert not service_cgroups(a, b)
    finally:
        vethwrap("destroy", a, b, "--grace", "0")


def test_a_namespace_deleted_by_hand_is_still_found_and_stopped(unchanged, netns, cli, pids):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b).returncode == 0
    try:
        first = run_json(cli, pids, a, "--", "sleep", "600")
        second = run_json(cli, pids, b, "--", "sleep", "600")
        lab_inodes = {inode_of(a), inode_of(b)}
        # what an older destroy did: the names go, the namespaces live on in their processes
        subprocess.run(["ip", "netns", "del", a], check=True)
        subprocess.run(["ip", "netns", "del", b], check=True)
        assert lab_inodes <= all_netns()
        listed = json.loads(vethwrap("ps", "--lab", a, "--json").stdout)["processes"]
        assert {first["pid"], second["pid"]} <= {p["pid"] for p in listed}
        done = vethwrap("destroy", "--lab", a, "--json")
        assert done.returncode == 0, done.stderr
        assert {first["pid"], second["pid"]} <= {s["pid"] for s in json.loads(done.stdout)
                                                 ["stopped"]}
        assert not lab_inodes & all_netns()
    finally:
        vethwrap("destroy", "--lab", a)


def test_up_writes_and_down_removes_the_name_files(unchanged, tmp_path):
    prefix = f"vt{RUN_ID}u-"
    lab = tmp_path / "lab.yaml"
    lab.write_text("name: svc\nnamespaces: [a, r, b]\nlinks:\n  - between: [a, r]\n"
                   "  - between: [r, b]\nforwarding: [r]\n")
    try:
        assert vethwrap("up", "-f", str(lab), "--prefix", prefix, "--no-verify").returncode == 0
        seen_from_a = open(f"/etc/netns/{prefix}a/hosts").read()
        seen_from_b = open(f"/etc/netns/{prefix}b/hosts").read()
        assert f"10.0.0.2\t{prefix}r" in seen_from_a and f"10.0.0.5\t{prefix}r" in seen_from_b
        lab.write_text("name: svc\nnamespaces: [a, r]\nlinks:\n  - between: [a, r]\n")
        assert vethwrap("up", "-f", str(lab), "--prefix", prefix, "--no-verify").returncode == 0
        assert not os.path.exists(f"/etc/netns/{prefix}b")
        assert f"{prefix}b" not in open(f"/etc/netns/{prefix}a/hosts").read()
        assert vethwrap("down", "-f", str(lab), "--prefix", prefix).returncode == 0
        assert not any(name.startswith(prefix) for name in os.listdir("/etc/netns"))
    finally:
        vethwrap("down", "-f", str(lab), "--prefix", prefix)
