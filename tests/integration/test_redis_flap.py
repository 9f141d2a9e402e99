"""Redis replication over a flapping link: the replica loses its master while the link is down,
the master goes on taking writes, and once the flaps end the replica has caught up."""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import until

from veth_wrap import pytest_plugin

vethwrap_lab = pytest_plugin.vethwrap_lab

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("redis-cli")),
                                 reason="redis-server is not installed")]


def _redis(lab, name: str, data, *extra: str) -> None:
    folder = data / name
    folder.mkdir(parents=True)
    lab.start(name, ["redis-server", "--port", "6379", "--bind", "0.0.0.0",
                     "--protected-mode", "no", "--save", "", "--appendonly", "no",
                     "--dir", str(folder), "--repl-timeout", "2", *extra],
              name="redis", wait_port=6379, timeout=20)


def _cli(lab, name: str, *args: str) -> str:
    return lab.run(name, ["redis-cli", "-h", "127.0.0.1", *args], timeout=10).stdout


def _replication(lab, name: str) -> dict:
    lines = _cli(lab, name, "info", "replication").splitlines()
    return dict(line.strip().split(":", 1) for line in lines if ":" in line)


def test_a_replica_behind_a_flapping_link_catches_up(vethwrap_lab, tmp_path):
    lab = vethwrap_lab(["primary", "replica"], topology="bridge")
    data = tmp_path / "redis"
    try:
        _redis(lab, "primary", data)
        _redis(lab, "replica", data, "--replicaof", "primary", "6379")  # by the lab's name
        until(lambda: _replication(lab, "replica").get("master_link_status") == "up",
              "the replica linked to its primary")
        flap = lab.flap("replica", down="4s", up="2s", count=2)
        seen_down, written = False, 0
        deadline = time.monotonic() + 40
        while flap.detail.alive():  # write through the flaps, watch the replica's view
            assert time.monotonic() < deadline, "the flaps did not end"
            assert _cli(lab, "primary", "set", f"k{written}", str(written)).strip() == "OK"
            written += 1
            seen_down |= _replication(lab, "replica").get("master_link_status") == "down"
            time.sleep(0.2)
        assert seen_down  # the replica noticed (repl-timeout 2 s, the link down 4 s)
        until(lambda: _replication(lab, "replica").get("master_link_status") == "up",
              "the replica linked again")
        until(lambda: _cli(lab, "replica", "dbsize").strip() == str(written),
              f"all {written} keys on the replica")
        primary = _replication(lab, "primary")
        until(lambda: _replication(lab, "replica").get("master_repl_offset")
              == _replication(lab, "primary").get("master_repl_offset"), "equal offsets")
        assert primary["connected_slaves"] == "1"
    finally:
        lab.stop_started()
        shutil.rmtree(data, ignore_errors=True)
