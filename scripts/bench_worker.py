#!/usr/bin/env python3
"""The benchmark's in-process half: vethwrap's API in one Python process, timed and counted.

`fixture KIND N REPS PREFIX`: REPS labs of N namespaces created (verified) and destroyed
with the pytest fixture's own factory; `api N PREFIX`: one bridge of N created (verified),
pinged first to last, destroyed; `pingall N PREFIX REPS`: api.pingall on a bridge of N,
timed REPS times; `hold N PREFIX SECONDS [--ipv6]`: softnet drops after building a bridge
of N. Prints one JSON object: seconds per cycle (median), and
the processes each phase started, counted by a wrapper around the runner (an `ip -batch`
is one, and each `netns exec` line in it one more).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Optional

PHASES = ("plan read", "build", "verify", "destroy")
# the checkout to measure: this one, or BENCH_SRC (another one, to compare before and after)
sys.path.insert(0, os.environ.get("BENCH_SRC") or os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def forks(batch: str) -> int:
    """The `ip` processes a batch's `netns exec` lines start, and those their batches start
    (a step run inside a root batch reads its own batch from a memory file, run/fuse)."""
    count = 0
    for line in batch.splitlines():
        if line.startswith("netns exec "):
            count += 1
            words = line.split()
            if words[-2] == "-batch" and words[-1].startswith("/dev/fd/"):
                with open(words[-1]) as inner:
                    count += forks(inner.read())
    return count


def counting_runner():
    """The real runner (so vethwrap treats it as such), counting processes per phase.

    Steps done without a process (files, the namespace list) never reach run(): not counted.
    """
    from veth_wrap.run.runner import ShRunner

    class CountingRunner(ShRunner):
        def __init__(self) -> None:
            super().__init__()
            self.phase = "other"
            self.counts: Counter = Counter()
            self.lock = threading.Lock()

        def run(self, argv, stdin: Optional[str] = None, check: bool = True):
            """Count, then run."""
            started = 1 + forks(stdin or "")  # before the sum: steps run in threads
            with self.lock:
                self.counts[self.phase] += started
            return super().run(argv, stdin, check)

    return CountingRunner()


def install():
    """Make every vethwrap call in this process go through a counting runner, by phase."""
    from veth_wrap import api
    from veth_wrap.run import runner as runmod
    from veth_wrap.run import transaction

    counting = counting_runner()
    runmod._default = counting
    for module, name, phase in ((api, "plan", "plan read"), (api, "apply", "build"),
                                (api, "verify", "verify"), (api, "destroy_built", "destroy"),
                                (api, "destroy", "destroy"), (transaction, "apply", "build")):
        if hasattr(module, name):  # an older checkout has no destroy_built
            setattr(module, name, _phased(getattr(module, name), counting, phase))
    return counting


def _phased(func, counting, phase: str):
    def wrapper(*args, **kwargs):  # the outermost phase wins: destroy's apply is destroy
        outer = counting.phase
        counting.phase = phase if outer == "other" else outer
        try:
            return func(*args, **kwargs)
        finally:
            counting.phase = outer
    return wrapper


def fixture(kind: str, n: int, reps: int, prefix: str) -> dict:
    """reps cycles as a test suite's fixture runs them; counts are per cycle."""
    from veth_wrap.pytest_plugin import LabFactory

    counting = install()
    times = []
    for rep in range(reps):
        factory = LabFactory()
        factory.prefix = f"{prefix}{rep}"
        start = time.perf_counter()
        try:
            factory([f"n{i}" for i in range(n)], topology=kind)
        finally:
            factory.destroy_all()
        times.append(time.perf_counter() - start)
    per = {phase: counting.counts[phase] / reps for phase in PHASES}
    return {"seconds": statistics.median(times), "processes": per}


def api_cycle(n: int, prefix: str) -> dict:
    """One bridge of n: create (verified), one ping first to last, destroy what it built."""
    from veth_wrap import api
    from veth_wrap.model import shapes

    counting = install()
    members = [f"{prefix}{i}" for i in range(n)]
    start = time.perf_counter()
    lab = shapes.build(members, lab=prefix)
    built = api.create(lab)
    try:
        counting.phase = "ping"  # not counted as a phase
        address = lab.address_of(members[-1], members[0]).split("/")[0]
        subprocess.run(["ip", "netns", "exec", members[0], "ping", "-c1", "-W1", "-q", address],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        counting.phase = "other"
        if hasattr(api, "destroy_built"):
            api.destroy_built(built)
        else:
            api.destroy(lab=lab.name)
    return {"seconds": time.perf_counter() - start,
            "processes": {phase: counting.counts[phase] for phase in PHASES}}


def pingall(n: int, prefix: str, reps: int) -> dict:
    """A bridge of n created once; api.pingall of its lab timed reps times (median)."""
    from veth_wrap import api
    from veth_wrap.model import shapes

    lab = shapes.build([f"{prefix}{i}" for i in range(n)], lab=prefix)
    built = api.create(lab)
    times = []
    try:
        for _ in range(reps):
            start = time.perf_counter()
            cells = api.pingall(lab=lab.name)
            times.append(time.perf_counter() - start)
            if len(cells) != n * (n - 1) or not all(cell.replied for cell in cells):
                raise RuntimeError("pingall: some pairs did not answer")
    finally:
        api.destroy_built(built)
    return {"seconds": statistics.median(times)}


def hold(n: int, prefix: str, seconds: float, ipv6: bool) -> dict:
    """A bridge of n created (verified); softnet drops and softirq time in the next seconds."""
    from benchscripts import softirq_ticks, softnet_drops

    from veth_wrap import api
    from veth_wrap.model import shapes

    lab = shapes.build([f"{prefix}{i}" for i in range(n)], lab=prefix, ipv6=ipv6)
    built = api.create(lab)
    try:
        drops, ticks = softnet_drops(), softirq_ticks()
        time.sleep(seconds)
        drops, ticks = softnet_drops() - drops, softirq_ticks() - ticks
    finally:
        api.destroy_built(built)
    return {"drops": drops, "core": ticks / os.sysconf("SC_CLK_TCK") / seconds}


def main() -> int:
    """Dispatch on the first argument; print JSON."""
    what, args = sys.argv[1], sys.argv[2:]
    if what == "fixture":
        result = fixture(args[0], int(args[1]), int(args[2]), args[3])
    elif what == "pingall":
        result = pingall(int(args[0]), args[1], int(args[2]))
    elif what == "hold":
        result = hold(int(args[0]), args[1], float(args[2]), args[3:] == ["--ipv6"])
    else:
        result = api_cycle(int(args[0]), args[1])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
