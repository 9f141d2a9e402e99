"""A three-member etcd cluster in a bridge lab: the leader partitioned away, the majority
elects another and takes writes, the isolated member refuses a linearizable read; healed,
every member reaches the same revision. Software nobody here wrote, under a real partition."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from conftest import until

from veth_wrap import pytest_plugin

vethwrap_lab = pytest_plugin.vethwrap_lab

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (shutil.which("etcd") and shutil.which("etcdctl")),
                                 reason="etcd-server and etcd-client are not installed")]
MEMBERS = ["e1", "e2", "e3"]
WHOLE_TEST = 60.0  # seconds: every wait below is a poll with a deadline inside this bound


def _start(lab, data) -> None:
    """etcd in each namespace, addressed by the names the test wrote (the name files')."""
    cluster = ",".join(f"{m}=http://{m}:2380" for m in MEMBERS)
    for member in MEMBERS:
        lab.start(member, ["etcd", "--name", member, "--data-dir", str(data / member),
                           "--listen-peer-urls", f"http://{lab.address(member)}:2380",
                           "--initial-advertise-peer-urls", f"http://{member}:2380",
                           "--listen-client-urls",
                           f"http://{lab.address(member)}:2379,http://127.0.0.1:2379",
                           "--advertise-client-urls", f"http://{member}:2379",
                           "--initial-cluster", cluster, "--initial-cluster-state", "new",
                           "--initial-cluster-token", lab.lab.name,
                           "--heartbeat-interval", "100", "--election-timeout", "1000"],
                  name="etcd", wait_port=2379, timeout=20)


def _ctl(lab, member: str, *args: str, timeout: str = "3s"):
    return lab.run(member, ["etcdctl", "--endpoints", "http://127.0.0.1:2379",
                            f"--command-timeout={timeout}", *args], timeout=30)


def _status(lab, member: str) -> dict:
    """The member's own view: its id, the leader it follows, the revision it holds."""
    done = _ctl(lab, member, "endpoint", "status", "-w", "json")
    if done.returncode != 0:
        return {}
    found = json.loads(done.stdout)[0]["Status"]
    if not found.get("leader"):  # 0 (left out of the JSON): it follows no leader now
        return {}
    return {"id": found["header"]["member_id"], "leader": found["leader"],
            "revision": found["header"]["revision"], "term": found["header"]["raft_term"]}


def _leader(lab, members: list[str]) -> str:
    """The member all of members agree leads (empty while they do not agree)."""
    seen = {m: _status(lab, m) for m in members}
    if not all(seen.values()) or len({s["leader"] for s in seen.values()}) != 1:
        return ""
    return next((m for m, s in seen.items() if s["id"] == s["leader"]), "")


def test_the_majority_elects_a_leader_and_the_isolated_member_refuses_reads(
        vethwrap_lab, tmp_path):
    deadline = time.monotonic() + WHOLE_TEST
    wait = {"deadline": deadline, "every": 0.2}
    lab = vethwrap_lab(MEMBERS)
    data = tmp_path / "etcd"
    try:
        _start(lab, data)
        first = until(lambda: _leader(lab, MEMBERS), "a first leader", **wait)
        assert _ctl(lab, first, "put", "before", "1").returncode == 0
        rest = [m for m in MEMBERS if m != first]
        with lab.partition([first], rest):
            second = until(lambda: _leader(lab, rest), "a leader of the majority", **wait)
            assert second != first
            wrote = until(lambda: _ctl(lab, second, "put", "during", "2").returncode == 0,
                           "a write the majority accepts", **wait)
            assert wrote
            refused = _ctl(lab, first, "get", "during", timeout="2s")
            assert refused.returncode != 0  # a linearizable read needs a quorum
            assert _ctl(lab, first, "get", "during", "--consistency=s").stdout == ""
        agreed = until(lambda: _same_revision(lab), "one revision on every member", **wait)
        assert agreed and _ctl(lab, first, "get", "during", "--print-value-only").stdout == "2\n"
    finally:
        lab.stop_started()
        shutil.rmtree(data, ignore_errors=True)
    assert time.monotonic() < deadline
    assert not data.exists()


def _same_revision(lab) -> bool:
    seen = [_status(lab, m) for m in MEMBERS]
    return all(seen) and len({s["revision"] for s in seen}) == 1 and \
        len({s["leader"] for s in seen}) == 1
