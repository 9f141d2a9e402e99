"""Environment faults: missing programs, an old iproute2, /run/netns not writable, no fds left."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
from faultip import REAL_IP, FaultyIp, differences, snapshot

pytestmark = pytest.mark.integration


def _run(args: list[str], env: dict, limit: int = 0) -> subprocess.CompletedProcess:
    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "veth_wrap", *args], capture_output=True,
                          text=True, env=dict(env, NO_COLOR="1"), timeout=300,
                          preexec_fn=lower_limit if limit else None)


def _one_line(result, codes, *needles: str) -> None:
    assert result.returncode in codes, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]


def test_missing_ip_or_ping_names_the_debian_package(netns, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    only_ip = tmp_path / "only-ip"
    only_ip.mkdir()
    (only_ip / "ip").symlink_to(REAL_IP)
    a, b = netns.name(), netns.make()
    before = snapshot([b])
    for args in (["create", a, b], ["destroy", b], ["show"]):
        _one_line(_run(args, dict(os.environ, PATH=str(empty))), (2,),
                  "'ip' was not found", "apt-get install -y iproute2")
    _one_line(_run(["ping", b, "10.0.0.2"], dict(os.environ, PATH=str(only_ip))), (2,),
              "'ping' was not found", "apt-get install -y iputils-ping")
    assert not differences(before, snapshot([b]))


@pytest.mark.parametrize("message, needles", [
    ('Option "-j" is unknown, try "ip -help".', ["too old for JSON", "iproute2"]),
    ('Cannot create namespace file "/run/netns/x": Permission denied\nCommand failed -:1',
     ["Permission denied", "/run/netns must be writable"]),
])
def test_host_faults_are_one_clear_line(message, needles, netns, tmp_path):
    a, b = netns.name(), netns.name()
    fake = FaultyIp(tmp_path / "ip")
    fake.reset(record=True)
    assert _run(["create", a, b, "--no-verify"], fake.env()).returncode == 0
    root_batch = next(int(line.split()[0]) for line in fake.calls() if "-batch" in line
                      and "-n" not in line.split() and fake.batch_lines(int(line.split()[0])))
    assert _run(["destroy", a, b], fake.env()).returncode == 0
    before = snapshot([])
    at = 1 if "-j" in message else root_batch
    fake.reset(at=at, mode="message", message=message)
    _one_line(_run(["create", a, b], fake.env()), (1, 2), *needles)
    assert not differences(before, snapshot([]))


def test_out_of_file_descriptors_is_one_clear_line(netns):
    a, b = netns.name(), netns.name()
    before = snapshot([])
    result = _run(["create", a, b, "--no-verify"], dict(os.environ), limit=10)
    _one_line(result, (1, 2), "Too many open files")
    assert not differences(before, snapshot([]))
