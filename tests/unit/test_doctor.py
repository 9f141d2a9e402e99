"""doctor: a read-only preflight; on this host for real, and on recorded data for each verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fakes import RecordingRunner

from veth_wrap.explain import doctor as doc
from veth_wrap.explain.doctor import Check, Status, doctor
from veth_wrap.run.runner import Result

DATA = Path(__file__).parent.parent / "data" / "diagnose"
NAMES = {"iproute2", "ping", "sysctl", "firewall tools", "privileges", "/run/netns",
         "br_netfilter", "docker", "rp_filter", "bridge ports"}


def host_state() -> tuple:
    """What doctor must not change: loaded modules and the sysctls it reads."""
    modules = sorted(os.listdir("/sys/module"))
    values = [doc.read_proc(p) for p in ("net/ipv4/conf/all/rp_filter", "net/ipv4/ip_forward",
                                         "net/bridge/bridge-nf-call-iptables")]
    return modules, values, os.path.exists("/proc/net/ip_tables_names")


def test_doctor_on_this_host_changes_nothing(unchanged):
    before = host_state()
    checks = doctor()
    assert host_state() == before
    assert NAMES <= {c.name for c in checks}
    assert all(isinstance(c.status, Status) and c.detail for c in checks)
    assert all(c.fix is None or all(isinstance(w, str) for w in c.fix) for c in checks)


def test_cli_doctor_json(cli):
    done = cli("doctor", "--json")
    data = json.loads(done.stdout)
    assert done.returncode == (1 if data["problems"] else 0), done.stderr
    assert {c["status"] for c in data["checks"]} <= {"ok", "warning", "problem"}
    assert NAMES <= {c["name"] for c in data["checks"]}


def test_cli_doctor_table(cli):
    done = cli("doctor")
    assert "br_netfilter" in done.stdout and "bridge ports" in done.stdout


def test_without_root_privileges_are_a_problem(monkeypatch):
    monkeypatch.setattr(doc.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(doc, "_effective_caps", lambda: 0)
    check = doc.check_privileges(RecordingRunner())
    assert check.status is Status.PROBLEM and "root" in check.detail
    monkeypatch.setattr(doc, "_effective_caps", lambda: (1 << 12) | (1 << 21))
    assert doc.check_privileges(RecordingRunner()).status is Status.OK


def fake_proc(monkeypatch, values: dict[str, str]) -> None:
    """Answer read_proc from a dict (None when absent)."""
    monkeypatch.setattr(doc, "read_proc", lambda path: values.get(path))


def test_docker_forward_drop_with_br_netfilter(monkeypatch):
    text = (DATA / "docker_root_iptables_save.txt").read_text()
    runner = RecordingRunner(lambda argv, stdin: Result(argv, text if argv[0] == "iptables-save"
                                                        else "", "", 0))
    monkeypatch.setattr(doc.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(doc, "tables_loaded", lambda: (False, True))
    fake_proc(monkeypatch, {"net/bridge/bridge-nf-call-iptables": "1"})
    checks = doc.check_forward_policies(runner)
    v4 = next(c for c in checks if "IPv4" in c.name)
    assert v4.status is Status.WARNING and "Docker" in v4.detail
    assert v4.fix == ["iptables", "-I", "DOCKER-USER", "-m", "physdev", "--physdev-is-bridged",
                      "-j", "ACCEPT"]
    assert all(argv[0].endswith("-save") for argv, _ in runner.calls)


def test_forward_drop_without_br_netfilter_is_fine(monkeypatch):
    text = (DATA / "docker_root_iptables_save.txt").read_text()
    runner = RecordingRunner(lambda argv, stdin: Result(argv, text, "", 0))
    monkeypatch.setattr(doc.shutil, "which", lambda name: f"/usr/sbin/{name}")
    fake_proc(monkeypatch, {"net/bridge/bridge-nf-call-iptables": "0"})
    assert doc._iptables_forward(runner, "iptables", False).status is Status.OK


def test_no_tables_loaded_asks_no_tool(monkeypatch):
    runner = RecordingRunner()
    monkeypatch.setattr(doc, "tables_loaded", lambda: (False, False))
    checks = doc.check_forward_policies(runner)
    assert [c.status for c in checks] == [Status.OK] and runner.calls == []


@pytest.mark.parametrize("values,status", [
    ({"net/ipv4/conf/all/rp_filter": "1", "net/ipv4/conf/default/rp_filter": "1"},
     Status.WARNING),
    ({"net/ipv4/conf/all/rp_filter": "2", "net/ipv4/conf/default/rp_filter": "2"}, Status.OK),
    ({"net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/default/rp_filter": "0"}, Status.OK),
])
def test_rp_filter(monkeypatch, values, status):
    fake_proc(monkeypatch, values)
    check = doc.check_rp_filter(RecordingRunner())
    assert check.status is status
    if status is Status.WARNING:
        assert check.fix == ["sysctl", "-w", "net.ipv4.conf.all.rp_filter=2",
                             "net.ipv4.conf.default.rp_filter=2"]


def test_br_netfilter_not_loaded(monkeypatch):
    fake_proc(monkeypatch, {})
    assert doc.check_br_netfilter(RecordingRunner()).status is Status.OK


def test_missing_ip_is_a_problem_with_the_package(monkeypatch):
    monkeypatch.setattr(doc.shutil, "which", lambda name: None)
    check = doc.check_ip(RecordingRunner())
    assert check.status is Status.PROBLEM
    assert check.fix == ["apt-get", "install", "-y", "iproute2"]


def test_ping_that_is_not_iputils(monkeypatch):
    monkeypatch.setattr(doc.shutil, "which", lambda name: "/bin/ping")
    runner = RecordingRunner(lambda argv, stdin: Result(argv, "BusyBox v1.36\n", "", 0))
    assert doc.check_ping(runner).fix == ["apt-get", "install", "-y", "iputils-ping"]


def test_check_json():
    check = Check("x", Status.WARNING, "d", ["a", "b"])
    assert check.to_json() == {"name": "x", "status": "warning", "detail": "d", "fix": ["a", "b"]}
