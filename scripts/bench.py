#!/usr/bin/env python3
"""Benchmark: vethwrap against bash and Mininet where users feel it; prints one table.

Rows: the pytest fixture's path (labs created, verified and destroyed in one Python
process), the API at scale against the floor (the same bridge in as few `ip -batch`
processes as possible), the CLI against lean bash (one `ip` per step), start-up, the
softnet backlog after building a big bridge, and pingall; Mininet rows where Debian's
mininet is installed. Ways are interleaved and medians taken: run it on a quiet machine.
Every name starts with --prefix and is deleted by exact name at the end, even after Ctrl-C.
`--quick` is a short run for development; without it, the full table (N=1,000 included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import benchscripts as bs

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MININET_PYTHON = "/usr/bin/python3"  # Debian's mininet is for the system interpreter


@dataclass
class Names:
    """Every namespace one run may create, so cleanup can delete them by exact name."""

    prefix: str
    made: set[str] = field(default_factory=set)
    count: int = 0

    def fresh(self, n: int) -> list[str]:
        """n new member names; their hubs (`<base>h`, `vethwrap-<base>`) are noted too."""
        self.count += 1
        base = f"{self.prefix}{self.count}x"
        names = [f"{base}{i}" for i in range(n)]
        self.made.update(names + [f"{base}h", f"vethwrap-{base}", f"vethwrap-{base}0"])
        return names

    def base(self) -> str:
        """A fresh prefix for a worker that names its own namespaces (cleanup by prefix)."""
        self.count += 1
        return f"{self.prefix}{self.count}w"

    def short(self) -> str:
        """A prefix for Mininet's names, short enough for its `<host>-eth<N>` interfaces."""
        self.count += 1
        return f"mn{self.count % 1000}"

    def cleanup(self) -> None:
        """Delete what is left of ours, by exact name (a worker's names by their prefix)."""
        present = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        ours = {ns for ns in present if ns in self.made or ns.startswith(self.prefix)
                or ns.startswith(f"vethwrap-{self.prefix}")}
        if ours:
            batch = "".join(f"netns del {ns}\n" for ns in sorted(ours))
            subprocess.run(["ip", "-force", "-batch", "-"], input=batch, text=True,
                           capture_output=True)


def timed_bash(text: str) -> float:
    """Seconds a bash script takes; raise if it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
        script.write(text)
        script.flush()
        start = time.perf_counter()
        subprocess.run(["bash", script.name], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def cli(*args: str) -> list[str]:
    """The argv of one vethwrap command, run from this checkout."""
    return [sys.executable, "-m", "veth_wrap", *args]


def timed_commands(commands: list[list[str]]) -> float:
    """Seconds a sequence of commands takes; raise naming the one that fails."""
    env = dict(os.environ, NO_COLOR="1")
    start = time.perf_counter()
    for argv in commands:
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=REPO)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[2:5])} failed: {done.stderr.strip()}")
    return time.perf_counter() - start


def cli_cycle(members: list[str]) -> list[list[str]]:
    """create (verified), ping first to last, destroy: three commands, as a user types them."""
    lab = members[0][:-1]
    return [cli("create", *members, "--lab", lab, "-q"), cli("ping", "-c", "1", *members[::len(
        members) - 1], "-q"), cli("destroy", "--lab", lab, "-q")]


def worker(*args: str) -> dict:
    """Run the in-process half (scripts/bench_worker.py); its JSON."""
    done = subprocess.run([sys.executable, str(HERE / "bench_worker.py"), *args], check=True,
                          capture_output=True, text=True, cwd=REPO)
    return json.loads(done.stdout)


def mininet(*args: str) -> dict:
    """Run the Mininet half with the system interpreter; its JSON."""
    done = subprocess.run([MININET_PYTHON, str(HERE / "bench_mininet.py"), *args], check=True,
                          capture_output=True, text=True, timeout=1800)
    return json.loads(done.stdout)


def has_mininet() -> bool:
    """True when the system interpreter can import mininet."""
    try:
        return subprocess.run([MININET_PYTHON, "-c", "import mininet.net"],
                              capture_output=True).returncode == 0
    except OSError:
        return False


def settle(n: int) -> None:
    """Let the kernel finish the previous run's asynchronous namespace cleanup (not timed)."""
    time.sleep(0.2 + n / 1000)


def median_of(reps: int, ways: dict, names: Names, n: int) -> dict:
    """Median seconds of each way, the ways interleaved so that drift hits them alike."""
    times: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(reps):
        for way, run in ways.items():
            times[way].append(run())
            names.cleanup()
            settle(n)
    return {way: statistics.median(values) for way, values in times.items()}


@dataclass
class Table:
    """Rows of the issue's table: what, vethwrap, yardstick, ratio; then process counts."""

    lines: list[tuple[str, str, str, str]] = field(default_factory=list)
    counts: list[tuple[str, dict]] = field(default_factory=list)

    def add(self, what: str, ours: float, theirs: float, yardstick: str, unit=None) -> None:
        """A row whose ratio is ours / theirs."""
        show = unit or _fmt
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        self.lines.append((what, show(ours), f"{yardstick}: {show(theirs)}", ratio))

    def note(self, what: str, ours: str, theirs: str) -> None:
        """A row without a ratio."""
        self.lines.append((what, ours, theirs, "-"))

    def print(self) -> None:
        """The table, then the processes by phase, as markdown."""
        print("| what | vethwrap | yardstick | ratio |\n| --- | --- | --- | --- |")
        for line in self.lines:
            print("| " + " | ".join(line) + " |")
        if self.counts:
            print("\n| processes started | " + " | ".join(PHASES) + " | total |")
            print("| --- |" + " --- |" * (len(PHASES) + 1))
            for what, per in self.counts:
                cells = [f"{per.get(phase, 0):g}" for phase in PHASES]
                print(f"| {what} | " + " | ".join(cells) + f" | {sum(per.values()):g} |")

    def as_json(self) -> dict:
        """The same, for scripts."""
        return {"rows": [dict(zip(("what", "vethwrap", "yardstick", "ratio"), line))
                         for line in self.lines], "processes": dict(self.counts)}


PHASES = ("plan read", "build", "verify", "destroy")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fixture_row(kind: str, n: int, cycles: int):
    """Labs of n made and destroyed `cycles` times in one process, as the fixture does."""
    def row(table: Table, names: Names, reps: int) -> None:
        script = bs.lean_pair if kind == "pair" else \
            (lambda members: bs.lean_bridge(members, both_ways=True))
        ours, lean = [], []
        for _ in range(reps):
            result = worker("fixture", kind, str(n), str(cycles), names.base())
            ours.append(result["seconds"])
            names.cleanup()
            lean.append(statistics.median(timed_bash(script(names.fresh(n)))
                                          for _ in range(min(cycles, 10))))
            names.cleanup()
        table.add(f"fixture: {kind} of {n} created (verified) and destroyed, {cycles} times "
                  "in one process, a lab", statistics.median(ours), statistics.median(lean),
                  "lean bash, two pings")
        table.counts.append((f"fixture {kind} of {n}, a lab", result["processes"]))
    return row


def api_row(n: int):
    """The API in one process against the floor: create (verified), ping, destroy."""
    def row(table: Table, names: Names, reps: int) -> None:
        found: dict = {}

        def ours() -> float:
            found.update(worker("api", str(n), names.base()))
            return found["seconds"]

        got = median_of(max(1, reps if n < 1000 else 1), {
            "api": ours, "floor": lambda: timed_bash(bs.floor(names.fresh(n)))}, names, n)
        table.add(f"API, bridge of {n}: create (verified) + ping + destroy, one process",
                  got["api"], got["floor"], "floor")
        table.counts.append((f"API bridge of {n}", found["processes"]))
    return row


def cli_row(n: int, with_mininet: bool):
    """Three commands against lean bash (and a Mininet cycle through its Python API)."""
    def row(table: Table, names: Names, reps: int) -> None:
        lean = bs.lean_pair if n == 2 else bs.lean_bridge
        got = median_of(reps, {"cli": lambda: timed_commands(cli_cycle(names.fresh(n))),
                               "lean": lambda: timed_bash(lean(names.fresh(n)))}, names, n)
        what = "pair" if n == 2 else f"bridge of {n}"
        table.add(f"CLI, {what}: create + ping + destroy, three commands", got["cli"],
                  got["lean"], "lean bash")
        if with_mininet:
            spent = statistics.median(mininet("cycle", str(n), names.short())["seconds"]
                                      for _ in range(reps))
            api = statistics.median(worker("api", str(n), names.base())["seconds"]
                                    for _ in range(reps))
            names.cleanup()
            table.add(f"API, {what}: create + ping + destroy", api, spent, "Mininet API")
    return row


def help_row(table: Table, names: Names, reps: int) -> None:
    """`vethwrap --help` against a bare interpreter start."""
    bare = [sys.executable, "-c", "pass"]
    got = median_of(max(reps, 5), {"help": lambda: timed_commands([cli("--help")]),
                                   "bare": lambda: timed_commands([bare])}, names, 0)
    table.add("`vethwrap --help`", got["help"], got["bare"], "bare `python3 -c pass`")


def softnet_row(n: int, seconds: float):
    """Softnet drops and softirq time in the seconds after building a bridge of n."""
    def row(table: Table, names: Names, reps: int) -> None:
        quiet = worker("hold", str(n), names.base(), str(seconds))
        names.cleanup()
        members = names.fresh(n)
        timed_bash("\n".join(["set -e", *bs.floor_build(members)]) + "\n")
        drops, ticks = bs.softnet_drops(), bs.softirq_ticks()
        time.sleep(seconds)
        drops, ticks = bs.softnet_drops() - drops, bs.softirq_ticks() - ticks
        timed_bash("\n".join(bs.floor_destroy(members)) + "\n")
        names.cleanup()
        dual = worker("hold", str(n), names.base(), str(seconds), "--ipv6")
        names.cleanup()
        core = ticks / os.sysconf("SC_CLK_TCK") / seconds
        table.note(f"{seconds:g} s after creating a bridge of {n}: softnet drops, softirq "
                   "(host-wide, share of one core)",
                   f"{quiet['drops']}, {quiet['core']:.1%}; with --ipv6: {dual['drops']}, "
                   f"{dual['core']:.1%}", f"the floor's lab: {drops}, {core:.1%}")
    return row


def pingall_row(n: int):
    """`vethwrap pingall` on a bridge of n against Mininet's pingAll() on n hosts."""
    def row(table: Table, names: Names, reps: int) -> None:
        ours = []
        for _ in range(reps):
            members = names.fresh(n)
            lab = members[0][:-1]
            timed_commands([cli("create", *members, "--lab", lab, "-q")])
            ours.append(timed_commands([cli("pingall", "--lab", lab, "-q")]))
            timed_commands([cli("destroy", "--lab", lab, "-q")])
        theirs = [mininet("pingall", str(n), names.short())["pingall"] for _ in range(reps)]
        table.add(f"pingall, {n} namespaces (each to every other)", statistics.median(ours),
                  statistics.median(theirs), "Mininet pingAll()")
    return row


def api_pingall_row(n: int):
    """The API's pingall in a running process against Mininet's pingAll(): both alone."""
    def row(table: Table, names: Names, reps: int) -> None:
        ours = worker("pingall", str(n), names.base(), str(reps))["seconds"]
        theirs = [mininet("pingall", str(n), names.short())["pingall"] for _ in range(reps)]
        table.add(f"API pingall, {n} namespaces, in a running process (each to every other)",
                  ours, statistics.median(theirs), "Mininet pingAll()")
    return row


def rows(quick: bool, with_mininet: bool) -> list[tuple[str, object]]:
    """The table's rows in order, by key (for --only)."""
    found = [("fixture-pair", fixture_row("pair", 2, 10 if quick else 30)),
             ("fixture-bridge", fixture_row("bridge", 5, 10 if quick else 30)),
             ("api-100", api_row(100))]
    if not quick:
        found.append(("api-1000", api_row(1000)))
    found += [("cli-100", cli_row(100, with_mininet and not quick)),
              ("cli-pair", cli_row(2, with_mininet)), ("help", help_row),
              ("softnet", softnet_row(300, 10.0))]
    if with_mininet:
        for n in (10,) if quick else (10, 50):
            found += [(f"pingall-{n}", pingall_row(n)), (f"api-pingall-{n}", api_pingall_row(n))]
    return found


def main() -> int:
    """Parse options, run, print; always clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (development)")
    parser.add_argument("--reps", type=int, help="repetitions per measurement")
    parser.add_argument("--prefix", default="vwbench", help="namespace name prefix")
    parser.add_argument("--no-mininet", action="store_true", help="leave out Mininet rows")
    parser.add_argument("--only", nargs="+", help="rows whose key starts with one of these")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.py: needs root (it creates namespaces); run it with sudo", file=sys.stderr)
        return 2
    names = Names(args.prefix)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "veth_wrap")],
                   stdout=subprocess.DEVNULL, check=False)  # timed runs compile nothing
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    table = Table()
    mn = not args.no_mininet and has_mininet()
    try:
        for key, row in rows(args.quick, mn):
            if args.only and not any(key.startswith(word) for word in args.only):
                continue
            try:
                row(table, names, args.reps or (3 if args.quick else 5))
            except (subprocess.SubprocessError, RuntimeError, OSError, ValueError) as error:
                table.note(key, f"failed: {str(error)[:200]}", "-")
            print(f"done: {key}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    finally:
        names.cleanup()
    if args.json:
        print(json.dumps(table.as_json(), indent=2))
    else:
        print(f"{date.today()}, {platform.node()}: {os.cpu_count()} CPUs, kernel "
              f"{platform.release()}, load {os.getloadavg()[0]:.1f} at the end")
        table.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
