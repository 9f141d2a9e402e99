"""`destroy --all` on one host stops that host's services only, though the machine's cgroup
hierarchy is shared with the other hosts on it (containers, simulated hosts)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import RUN_ID
from hosts import sim_hosts_fixture

pytestmark = pytest.mark.integration
sim_hosts = sim_hosts_fixture()
A, B = f"vt{RUN_ID}da", f"vt{RUN_ID}db"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "veth_wrap", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def machine_service():
    """A service in a lab of the machine itself; removed by exact name."""
    try:
        assert cli("create", A, B, "-q").returncode == 0
        started = cli("run", A, "--name", "keep", "--", "sleep", "600")
        assert started.returncode == 0, started.stderr
        yield
    finally:
        cli("destroy", "-q", A, B)


def test_destroy_all_on_another_host_leaves_this_hosts_services(sim_hosts, machine_service):
    other = sim_hosts.add("other")
    gone = other.vethwrap("destroy", "--all")
    assert gone.returncode == 0, gone.stderr
    assert "keep" not in gone.stdout + gone.stderr
    listed = cli("ps", A)
    assert "keep" in listed.stdout and "sleep 600" in listed.stdout, listed.stdout
