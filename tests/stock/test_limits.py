"""Service limits on the stock kernel's pure cgroup v2 (this host's hybrid one has no
controllers): a memory hog is OOM-killed inside its limit, a CPU burner gets about its share.

Runs inside the stock-kernel guest (see conftest.py); what the services leave in the cgroup
hierarchy is checked gone at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from .guest import measured, vethwrap, vethwrap_json

pytestmark = pytest.mark.stock_kernel

TOP = Path("/sys/fs/cgroup/vethwrap")
# waits a second (so that `run` sees it start), then takes 8 MiB at a time, for ever
HOG = "import time; time.sleep(1); kept = []\nwhile True: kept.append(bytearray(8 << 20))"
BURN = "while True: pass"


def _run(namespace: str, *args: str) -> dict:
    """`vethwrap run NS --json ARGS` (--json before the command's own words)."""
    return json.loads(vethwrap("run", namespace, "--json", *args).stdout)


def _events(folder: Path, name: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in (folder / name).read_text()
                                   .splitlines())}


def _usage_usec(folder: Path) -> int:
    return _events(folder, "cpu.stat")["usage_usec"]


def _ours(prefix: str) -> list[str]:
    return [n for n in os.listdir(TOP) if prefix in n] if TOP.exists() else []


def test_a_memory_hog_dies_inside_its_limit_and_a_burner_gets_its_share(names):
    a, b = names(2)
    vethwrap("create", a, b, "--no-verify")
    try:
        hog = _run(a, "--name", "hog", "--memory", "48M", "--", sys.executable, "-c", HOG)
        folder = Path(hog["cgroup"])
        assert hog["limits"]["memory_bytes"] == 48 << 20
        assert (folder / "memory.max").read_text().strip() == str(48 << 20)
        deadline = time.monotonic() + 240
        while _events(folder, "cgroup.events")["populated"]:
            assert time.monotonic() < deadline, "the hog outlived its memory limit"
            time.sleep(0.2)
        assert _events(folder, "memory.events")["oom_kill"] >= 1
        peak = folder / "memory.peak"
        if peak.exists():
            assert int(peak.read_text()) <= 48 << 20
        burn = _run(a, "--name", "burn", "--cpus", "0.25", "--", sys.executable, "-c", BURN)
        listed = [p for p in vethwrap_json("ps", a)["processes"] if p["name"] == "burn"]
        assert listed and listed[0]["limits"]["cpus"] == 0.25, listed
        folder = Path(burn["cgroup"])
        time.sleep(1)  # past the interpreter's start
        began, used = time.monotonic(), _usage_usec(folder)
        time.sleep(4)
        share = (_usage_usec(folder) - used) / 1e6 / (time.monotonic() - began)
        measured("cpu share of a --cpus 0.25 burner", round(share, 3))
        assert 0.15 <= share <= 0.3, share
    finally:
        vethwrap("destroy", a, b, "--grace", "0", check=False)
    assert not _ours(f"{a}:") and not _ours(f"{b}:")
