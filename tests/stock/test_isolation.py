"""What the guest does stays in the guest: the host's tree is read-only here, /run is the guest's.

Runs inside the stock-kernel guest (see conftest.py); the outer test checks the host side.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from .guest import run

pytestmark = pytest.mark.stock_kernel

CHECKOUT = Path(__file__).resolve().parents[2]


def _mounts() -> dict[str, str]:
    """{mount point: file system type}; the last mount on a point wins."""
    found = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, fstype, *_ = line.split()
        found[point] = fstype
    return found


def test_the_host_tree_is_read_only_and_run_is_the_guests():
    with pytest.raises(OSError) as refused:
        (CHECKOUT / f".stock-probe-{os.getpid()}").write_text("x")
    assert refused.value.errno == errno.EROFS
    mounts = _mounts()
    assert mounts.get("/run") == "tmpfs", mounts  # /run/netns and /run/vethwrap live here
    assert mounts.get("/tmp") == "overlay", mounts  # writes under /tmp stay in the guest
    results = os.environ["RESULTS"]
    assert mounts.get(results) == "9p", mounts  # the one directory that comes back
    assert "virtme" in Path("/proc/cmdline").read_text()
    assert run("uname", "-r").stdout.strip() in str(os.environ.get("VETHWRAP_STOCK_KERNEL", ""))
