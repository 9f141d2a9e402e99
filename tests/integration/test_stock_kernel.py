"""The stock-kernel lane: tests/stock run inside Debian's own kernel, booted once under QEMU.

This machine's kernel lacks sch_netem (and may lack br_netfilter); Debian 12's distribution kernel
has both. scripts/stock_kernel.sh installs QEMU and virtme-ng and unpacks that kernel;
scripts/stock_guest.py boots it with TCG, the host's file tree as the guest's root, and runs
pytest on tests/stock inside, this checkout on PYTHONPATH, this interpreter. The guest's results
come back through one writable directory; this test fails with the guest's pytest summary when a
guest test fails, and checks that nothing of the guest's reached the host.

When the lane cannot be prepared (no QEMU, no kernel package) it is skipped with the reason, which
under CI=true counts as a failure like any integration skip.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PREPARE = ROOT / "scripts" / "stock_kernel.sh"
GUEST = ROOT / "scripts" / "stock_guest.py"
STOCK = ROOT / "tests" / "stock"
JOBS = int(os.environ.get("VETHWRAP_STOCK_JOBS", "2"))  # pytest processes run at once inside
TIMEOUT = float(os.environ.get("VETHWRAP_STOCK_TIMEOUT", "900"))  # a boot; the lane takes ~150
NO_RESULT = 125  # scripts/stock_guest.py: no exit status came out (no boot, or a hang)
# VETHWRAP_STOCK_KEEP=1 keeps the results directory (/tmp/vethwrap-stock-*) after a pass too


def _prepare() -> tuple[Path, float]:
    started = time.monotonic()
    done = subprocess.run(["bash", str(PREPARE)], capture_output=True, text=True, timeout=1800,
                          check=False)
    took = time.monotonic() - started
    lines = done.stdout.split()
    if done.returncode != 0 or not lines:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"the stock-kernel lane cannot be prepared: {why}")
    kernel = Path(lines[-1])
    if not kernel.is_file():
        pytest.skip(f"the stock-kernel lane cannot be prepared: no kernel at {kernel}")
    return kernel, took


def _groups(jobs: int) -> list[tuple[str, list[str]]]:
    """tests/stock in JOBS pytest runs, its files dealt round the runs, longest first."""
    if jobs <= 1:
        return [("all", ["tests/stock/"])]
    files = sorted(STOCK.glob("test_*.py"), key=lambda p: -p.stat().st_size)
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(files)))]
    for i, path in enumerate(files):
        groups[i % len(groups)].append(str(path.relative_to(ROOT)))
    return [(str(i), group) for i, group in enumerate(groups)]


def _guest_command(python: str, groups: list[tuple[str, list[str]]]) -> str:
    """Runs the groups at once inside; exit 0 only when every pytest run exited 0."""
    lines = []
    for name, paths in groups:
        pytest_argv = [python, "-m", "pytest", "-m", "stock_kernel", *paths, "-p",
                       "no:cacheprovider", "-q", "-rA", "--color=no", "--durations=0",
                       f"--junitxml=$RESULTS/junit-{name}.xml"]
        words = " ".join(shlex.quote(w) if not w.startswith("--junitxml") else f'"{w}"'
                         for w in pytest_argv)
        lines.append(f'( {words} >"$RESULTS/pytest-{name}.txt" 2>&1; '
                     f'echo $? >"$RESULTS/rc-{name}" ) &')
    lines += ["wait", 'for f in "$RESULTS"/rc-*; do [ "$(cat "$f")" = 0 ] || exit 1; done']
    return "\n".join(lines)


def _snapshot() -> tuple[set[str], set[str]]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return ({line.split()[0] for line in netns.splitlines() if line},
            {line.split(": ")[1].split("@")[0] for line in links.splitlines()})


def _git_status() -> str:
    """Tracked changes and untracked files (the guest sees the checkout read-only, which
    tests/stock/test_isolation.py checks from inside)."""
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT,
                          capture_output=True, text=True).stdout


def _summary(results: Path) -> str:
    """Each guest pytest run's failures and closing lines, or the console's end."""
    parts = []
    for out in sorted(results.glob("pytest-*.txt")):
        text = out.read_text(errors="replace")
        cut = text.find("= FAILURES =")
        cut = text.rfind("\n", 0, cut) if cut >= 0 else max(0, len(text) - 6000)
        parts.append(f"--- {out.name} ---\n{text[cut:][-12000:]}")
    if not parts:
        console = (results / "console.log").read_text(errors="replace")
        parts.append("--- console.log (no pytest output came out) ---\n" + console[-6000:])
    return "\n".join(parts)


def test_stock_kernel_suite():
    kernel, prepared = _prepare()
    run_id = uuid.uuid4().hex[:5]
    # under /tmp (the guest sees /tmp, not /var/tmp), and not in pytest's basetemp, which
    # other pytest runs may rotate away while the guest runs; removed when the lane passes
    results = Path(tempfile.mkdtemp(prefix=f"vethwrap-stock-{run_id}-", dir="/tmp"))
    measured_file = results / "measured.jsonl"
    # the guest's root is read-only: bytecode it lacks it would compile in every process
    subprocess.run([sys.executable, "-m", "compileall", "-q", "veth_wrap", "tests"], cwd=ROOT,
                   capture_output=True, check=False)
    before, git_before = _snapshot(), _git_status()
    env = {"VETHWRAP_STOCK_RUN": run_id, "VETHWRAP_STOCK_MEASURED": str(measured_file),
           "VETHWRAP_STOCK_KERNEL": str(kernel),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "COLUMNS": "200"}
    groups = _groups(JOBS)
    argv = [sys.executable, str(GUEST), str(results), "--kernel", str(kernel), "--timeout",
            str(TIMEOUT), *(f"--env={k}={v}" for k, v in env.items()), "--",
            _guest_command(sys.executable, groups)]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 120,
                          check=False)
    if done.returncode == NO_RESULT:
        # The emulated guest stalled (or never booted) without a word from its tests: boot it
        # once more, and say so. Tests that fail fail at once; only silence is retried.
        console = (results / "console.log").read_text(errors="replace")[-3000:] \
            if (results / "console.log").exists() else ""
        print(f"stock-kernel lane: no result after {time.monotonic() - started:.0f} s, "
              f"booting again; the console's end:\n{console}")
        for stale in results.iterdir():
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 120,
                              check=False)
    wall = time.monotonic() - started

    uptime = dict(line.split() for line in (results / "uptime").read_text().splitlines()) \
        if (results / "uptime").exists() else {}
    inside = float(uptime["end"]) - float(uptime["start"]) if len(uptime) == 2 else None
    timing = {"prepare_s": round(prepared, 1), "vng_wall_s": round(wall, 1),
              "guest_tests_s": inside and round(inside, 1),
              "boot_and_shutdown_s": inside and round(wall - inside, 1), "jobs": len(groups)}
    report = {"timing": timing, "measured": [json.loads(line) for line in
                                             measured_file.read_text().splitlines()]
              if measured_file.exists() else []}
    (results / "report.json").write_text(json.dumps(report, indent=2))
    print(f"stock-kernel lane ({kernel.name}): {json.dumps(report, indent=2)}")
    for out in sorted(results.glob("pytest-*.txt")):
        text = out.read_text(errors="replace")
        cut = text.find("slowest durations")
        tail = text[text.rfind("\n", 0, cut) + 1:] if cut >= 0 else text[-3000:]
        print(f"--- guest {out.name} ---\n{tail}")

    # nothing of the guest's may show on the host: namespaces, links, the checkout
    after = _snapshot()
    leaked = [name for name in (after[0] - before[0]) | (after[1] - before[1]) if run_id in name]
    leaked += [name for name in os.listdir("/run/netns") if run_id in name] \
        if os.path.isdir("/run/netns") else []
    assert not leaked, f"the guest's objects showed up on the host: {leaked}"
    assert _git_status() == git_before, "the guest wrote into the checkout"

    assert done.returncode == 0, (
        f"guest tests failed (exit {done.returncode}; timing {timing}; kept {results})\n"
        f"{done.stderr[-2000:]}\n{_summary(results)}")
    passed = sum(int(n) for out in results.glob("pytest-*.txt")
                 for n in re.findall(r"(\d+) passed", out.read_text()[-400:]))
    assert passed >= len(list(STOCK.glob("test_*.py"))), _summary(results)
    if os.environ.get("VETHWRAP_STOCK_KEEP") != "1":
        shutil.rmtree(results)
