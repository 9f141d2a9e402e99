"""Real daemons as services, on real namespaces: nginx and dnsmasq in their default (forking)
modes, redis, services that ignore SIGTERM and escape their session; each in a cgroup of its
own, which every test leaves as it found (the fixture kills and removes what a failed test
left, by the cgroups it made). The CLI runs in-process (vethwrap) but where a service must
outlive the command that started it, and where the CLI's start-up time is measured (cli)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from conftest import RUN_ID
from inprocess import vethwrap
from test_services import running

pytestmark = pytest.mark.integration

UNIFIED = next((p for p in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
                if os.path.exists(f"{p}/cgroup.procs") and os.path.exists(f"{p}/cgroup.events")
                or os.path.exists(f"{p}/cgroup.subtree_control")), "/sys/fs/cgroup/unified")
TOP = f"{UNIFIED}/vethwrap"
IGNORES_TERM = "trap '' TERM; while :; do sleep 0.2; done"
# a daemon: leaves its session and its parent at once, and ignores SIGTERM
ESCAPES = f"setsid sh -c \"{IGNORES_TERM}\" & exit 0"
# forks a TERM-ignoring child, then ignores SIGTERM itself
FORKS = f"sh -c \"{IGNORES_TERM}\" & {IGNORES_TERM}"
NGINX = """user root;
pid {dir}/nginx.pid;
error_log stderr;
events {{}}
http {{
    access_log off;
    server {{ listen {port}; root {dir}/www; }}
}}
"""


def ours() -> set[str]:
    """This run's service cgroups (their names hold the run's prefix)."""
    try:
        return {name for name in os.listdir(TOP) if f"vt{RUN_ID}" in name}
    except OSError:
        return set()


@pytest.fixture
def groups():
    """Fail a test that leaves a cgroup of its own; kill and remove what it left, by cgroup."""
    yield
    left = ours()
    for name in left:
        path = f"{TOP}/{name}"
        with open(f"{path}/cgroup.kill", "w") as f:
            f.write("1")
        deadline = time.monotonic() + 10
        while "populated 1" in open(f"{path}/cgroup.events").read():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.rmdir(path)
    assert not left, f"cgroups left behind: {left}"


def needs(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (installed by .ci/run)")


def nginx_conf(tmp_path, port: int = 80) -> str:
    (tmp_path / "www").mkdir(exist_ok=True)
    (tmp_path / "www" / "index.html").write_text(f"hello from {RUN_ID}\n")
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX.format(dir=tmp_path, port=port))
    return str(conf)


def inside(ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=timeout)


def lab(netns) -> tuple[str, str]:
    a, b = netns.name(), netns.name()
    done = vethwrap("create", a, b, "--no-verify")
    assert done.returncode == 0, done.stderr
    return a, b


def test_nginx_as_a_daemon_by_name_listed_stopped_and_never_twice(unchanged, netns, cli,
                                                                   groups, tmp_path):
    needs("nginx", "curl")
    a, b = lab(netns)
    conf = nginx_conf(tmp_path)
    try:
        done = cli("run", b, "--name", "nginx", "--wait-port", "80", "--", "nginx", "-c", conf)
        assert done.returncode == 0, done.stderr
        assert "listening on port 80" in done.stdout
        page = inside(a, "curl", "-sS", "--max-time", "10", f"http://{b}/")
        assert page.returncode == 0 and page.stdout == f"hello from {RUN_ID}\n", page.stderr
        listed = json.loads(vethwrap("ps", b, "--json").stdout)["processes"]
        assert {p["name"] for p in listed} == {"nginx"} and len(listed) >= 2  # master, worker
        again = vethwrap("run", b, "--name", "nginx", "--wait-port", "80", "--", "nginx", "-c",
                         conf)
        assert again.returncode == 2 and "already runs" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        stopped = vethwrap("stop", b, "nginx")
        assert stopped.returncode == 0, stopped.stderr
        assert not json.loads(vethwrap("ps", b, "--json").stdout)["processes"]
        assert not ours()
    finally:
        vethwrap("destroy", a, b, "--grace", "0")


def test_a_port_someone_else_holds_is_not_the_services(unchanged, netns, groups, tmp_path):
    needs("nginx")
    a, b = lab(netns)
    holder = subprocess.Popen(["ip", "netns", "exec", b, "python3", "-m", "http.server", "8080"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while ":1F90 00000000:0000 0A" not in inside(b, "cat", "/proc/net/tcp").stdout:
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        # alive, but not listening: the holder's socket is not the service's
        quiet = vethwrap("run", b, "--name", "nap", "--wait-port", "8080", "--wait-timeout", "1",
                    "--", "sleep", "600")
        assert quiet.returncode == 1 and "was not listening on port 8080" in quiet.stderr
        # nginx cannot bind: it ends, and its log says why
        failed = vethwrap("run", b, "--name", "web", "--wait-port", "8080", "--", "nginx", "-c",
                     nginx_conf(tmp_path, 8080))
        assert failed.returncode == 1, failed.stderr
        assert "ended before listening on port 8080" in failed.stderr
        assert "Address already in use" in failed.stderr
        assert not ours()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        vethwrap("destroy", a, b, "--grace", "0")


def test_dnsmasq_answers_dig_from_another_namespace(unchanged, netns, cli, groups, tmp_path):
    needs("dnsmasq", "dig")
    a, b = lab(netns)
    try:
        server = inside(a, "getent", "hosts", b).stdout.split()[0]  # the lab's own names
        done = cli("run", b, "--name", "dns", "--wait-port", "53/udp", "--", "dnsmasq",
                   "--conf-file=/dev/null", "--no-resolv", "--user=root", "--group=root",
                   f"--pid-file={tmp_path}/dnsmasq.pid", "--address=/lab.test/10.9.9.9")
        assert done.returncode == 0, done.stderr
        for name, address in ((b, server), ("www.lab.test", "10.9.9.9")):
            answer = inside(a, "dig", "+short", "+time=2", "+tries=3", f"@{server}", name)
            assert answer.stdout.split() == [address], answer
        assert vethwrap("stop", b, "dns").returncode == 0
    finally:
        vethwrap("destroy", a, b, "--grace", "0")


def test_redis_is_awaited_with_a_command_and_restarted_as_it_was(unchanged, netns, cli, groups):
    needs("redis-server", "redis-cli")
    a, b = lab(netns)
    try:
        # redis rewrites its environment for its process title: the shell says what it got
        done = cli("run", b, "--name", "redis", "--env", "GREETING=hi", "--wait-cmd",
                   "redis-cli ping", "--json", "--", "sh", "-c",
                   'echo "greeting=$GREETING"; exec redis-server "$@"', "redis-server",
                   "--port", "6379", "--save", "", "--appendonly", "no",
                   "--protected-mode", "no")
        assert done.returncode == 0, done.stderr
        first = json.loads(done.stdout)
        assert inside(a, "redis-cli", "-h", b, "ping").stdout.strip() == "PONG"
        again = cli("restart", b, "redis", "--json")
        assert again.returncode == 0, again.stderr
        second = json.loads(again.stdout)
        assert second["pid"] != first["pid"] and second["cgroup"] == first["cgroup"]
        assert inside(a, "redis-cli", "-h", b, "ping").stdout.strip() == "PONG"
        assert vethwrap("logs", b, "redis").stdout.startswith("greeting=hi\n")
        never = vethwrap("restart", b, "nothing-here")
        assert never.returncode == 2 and "no service nothing-here" in never.stderr
    finally:
        vethwrap("destroy", a, b, "--grace", "0")


def test_destroy_with_stubborn_and_escaping_services_takes_grace_plus_a_second(
        unchanged, netns, cli, groups, tmp_path):
    needs("nginx")
    a, b = lab(netns)
    try:
        for name, argv in (("forks", ["sh", "-c", FORKS]), ("escapes", ["sh", "-c", ESCAPES]),
                           ("nap", ["sleep", "600"]),
                           ("web", ["nginx", "-c", nginx_conf(tmp_path)])):
            done = cli("run", b, "--name", name, "--", *argv)
            assert done.returncode == 0, done.stderr
        escaped = [p for p in json.loads(vethwrap("ps", b, "--json").stdout)["processes"]
                   if p["name"] == "escapes"]
        assert escaped, "the escaped daemon is listed under its service's name"
        began = time.monotonic()
        assert cli("--version").returncode == 0
        start = time.monotonic() - began  # the interpreter's and the CLI's own start
        began = time.monotonic()
        done = cli("destroy", a, b, "--grace", "1")
        took = time.monotonic() - began - start
        assert done.returncode == 0, done.stderr
        assert took < 1 + 1, took  # grace and a second
        assert "SIGKILL" in done.stderr
        assert not ours()
        for proc in escaped:  # killed; init may take a moment to reap it
            deadline = time.monotonic() + 10
            while running(proc["pid"]):
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        vethwrap("destroy", a, b, "--grace", "0")


def test_reserved_names_and_limits_are_refused_in_one_line(unchanged, netns, cli, groups):
    a, b = lab(netns)
    try:
        for env in ("VETHWRAP_SERVICE=x", "VETHWRAP_LAB=y", "VETHWRAP_NETNS=z"):
            done = vethwrap("run", a, "--env", env, "--", "sleep", "1")
            assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done
            assert "vethwrap's own" in done.stderr
        with open(f"{UNIFIED}/cgroup.controllers") as f:
            has_memory = "memory" in f.read().split()
        done = cli("run", a, "--memory", "64M", "--json", "--", "sleep", "600")
        if has_memory:  # a pure cgroup v2 host: the limit is the kernel's
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["limits"]["memory_bytes"] == 64 << 20
        else:
            assert done.returncode == 2 and "memory controller" in done.stderr, done
            assert len(done.stderr.strip().splitlines()) == 1
        assert not ours() or has_memory
    finally:
        vethwrap("destroy", a, b, "--grace", "0")


def test_a_symlinked_log_is_refused_never_followed(unchanged, netns, cli, groups, tmp_path):
    a, b = lab(netns)
    secret = tmp_path / "secret"
    secret.write_text("not for the log reader\n")
    try:
        done = cli("run", a, "--name", "talk", "--json", "--", "sh", "-c", "echo hi; sleep 600")
        assert done.returncode == 0, done.stderr
        log = json.loads(done.stdout)["log"]
        assert vethwrap("stop", a, "talk").returncode == 0
        os.unlink(log)
        os.symlink(secret, log)
        shown = vethwrap("logs", a, "talk")
        assert shown.returncode == 2 and "not for the log reader" not in shown.stdout
        assert f"{log} is a symbolic link" in shown.stderr
        assert len(shown.stderr.strip().splitlines()) == 1
        folder = os.path.dirname(log)  # a linked folder on the way is refused too
        os.unlink(log)
        os.rename(folder, f"{folder}.real")
        os.symlink(f"{folder}.real", folder)
        shown = vethwrap("logs", a, "talk")
        assert shown.returncode == 2 and f"{folder} is a symbolic link" in shown.stderr
        os.unlink(folder)
        os.rename(f"{folder}.real", folder)
        assert secret.read_text() == "not for the log reader\n"
    finally:
        vethwrap("destroy", a, b, "--grace", "0")


def test_a_lab_file_starts_its_services_in_order_and_down_stops_them(unchanged, cli, groups,
                                                                      tmp_path):
    needs("nginx", "curl")
    prefix = f"vt{RUN_ID}s-"
    conf = nginx_conf(tmp_path)
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(f"""name: svc
namespaces: [client, web]
links:
  - between: [client, web]
services:
  web:
    - {{name: nginx, argv: [nginx, -c, {conf}], wait_port: 80}}
    - {{name: after, argv: [sh, -c, 'echo "$GREETING"; sleep 600'], env: {{GREETING: hi}}}}
""")
    try:
        dry = vethwrap("up", "-f", str(lab_file), "--prefix", prefix, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert (f"vethwrap run {prefix}web --name nginx --wait-port 80 -- nginx -c {conf}"
                in dry.stdout.splitlines())
        assert not ours()
        up = cli("up", "-f", str(lab_file), "--prefix", prefix, "--no-verify", "--json")
        assert up.returncode == 0, up.stderr
        assert up.stderr.index("nginx runs in") < up.stderr.index("after runs in")
        started = json.loads(up.stdout)["services"]
        assert [(s["namespace"], s["name"], s["started"]) for s in started] == [
            (f"{prefix}web", "nginx", True), (f"{prefix}web", "after", True)]
        for service in started:
            assert service["pid"] > 0 and service["log"].endswith(f"/{service['name']}.log")
        page = inside(f"{prefix}client", "curl", "-sS", "--max-time", "10", f"http://{prefix}web/")
        assert page.stdout == f"hello from {RUN_ID}\n", page.stderr
        again = vethwrap("up", "-f", str(lab_file), "--prefix", prefix, "--no-verify", "--json")
        assert again.returncode == 0 and "nginx already runs" in again.stderr
        assert not any(s["started"] for s in json.loads(again.stdout)["services"])
        assert vethwrap("logs", f"{prefix}web", "after").stdout == "hi\n"
        down = vethwrap("down", "-f", str(lab_file), "--prefix", prefix, "--json")
        assert down.returncode == 0, down.stderr
        assert {"nginx", "after"} <= {s["name"] for s in json.loads(down.stdout)["stopped"]}
        assert not ours()
    finally:
        vethwrap("down", "-f", str(lab_file), "--prefix", prefix, "--grace", "0")


def test_a_services_section_with_problems_names_each(tmp_path):
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text("""name: bad
namespaces: [a, b]
links:
  - between: [a, b]
services:
  a:
    - {argv: 'nginx -g x'}
    - {argv: [sleep, '1'], env: {VETHWRAP_SERVICE: x}}
    - {argv: [sleep, '1'], wait_port: 80/sctp, colour: red}
  c: [{argv: [true]}]
""")
    done = vethwrap("validate", "-f", str(lab_file), "--json")
    assert done.returncode == 2
    problems = json.loads(done.stdout)["problems"]
    assert len(problems) == 5, problems
    for needle in ("services.a[0].argv", "vethwrap's own", "80/sctp", "colour", "services.c"):
        assert any(needle in problem for problem in problems), (needle, problems)
