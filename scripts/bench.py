#!/usr/bin/env python3
"""Benchmark: build a bridge of N namespaces, ping first to last, tear down; three ways.

The ways are a lean bash script (one `ip` per step, `ip -n NS`, veth ends created inside
their namespaces), a tutorial-style bash script (`ip link set X netns`, `ip netns exec`) and
the vethwrap CLI (create, verified, then ping, then destroy). Both scripts keep the bridge in
a namespace of its own, as vethwrap does, so the root namespace never changes. Every name
starts with --prefix and is deleted by exact name at the end, even after Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

SIZES = (2, 10, 50, 100)
WAYS = ("lean bash", "tutorial bash", "vethwrap")
SHORT = {"lean bash": "l", "tutorial bash": "t", "vethwrap": "v"}


@dataclass
class Names:
    """Every namespace one run may create, so cleanup can delete them by exact name."""

    prefix: str
    made: set[str] = field(default_factory=set)

    def members(self, way: str, rep: int, n: int) -> list[str]:
        """Member names of one run; the hub is `<first>h` (scripts) or `vethwrap-<lab>`."""
        base = f"{self.prefix}{SHORT[way]}{rep}x"
        names = [f"{base}{i}" for i in range(n)]
        self.made.update(names + [f"{base}h", f"vethwrap-{base}"])
        return names

    def cleanup(self) -> None:
        """Delete what is left of ours, by exact name."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        present = {line.split()[0] for line in listed.splitlines() if line.strip()}
        leftovers = sorted(present & self.made)
        if leftovers:
            batch = "".join(f"netns del {ns}\n" for ns in leftovers)
            subprocess.run(["ip", "-force", "-batch", "-"], input=batch, text=True,
                           capture_output=True)


def lean_script(members: list[str]) -> str:
    """One ip process per step, `ip -n NS`, veth ends created where they live."""
    hub, n = members[0][:-1] + "h", len(members)
    lines = ["set -e", f"ip netns add {hub}", f"ip -n {hub} link add br0 up type bridge"]
    for i, ns in enumerate(members):
        lines += [f"ip netns add {ns}",
                  f"ip -n {ns} link add eth0 type veth peer name p{i} netns {hub}",
                  f"ip -n {ns} addr add {_address(i, n)} dev eth0",
                  f"ip -n {ns} link set eth0 up",
                  f"ip -n {hub} link set p{i} master br0 up"]
    lines.append(f"ip netns exec {members[0]} ping -c1 -W1 -q {_address(n - 1, n, False)}"
                 " >/dev/null")
    lines += [f"ip netns del {ns}" for ns in members + [hub]]
    return "\n".join(lines) + "\n"


def tutorial_script(members: list[str]) -> str:
    """The tutorial's way: veth made in one place, moved with `link set netns`, netns exec."""
    hub, n = members[0][:-1] + "h", len(members)
    lines = ["set -e", f"ip netns add {hub}",
             f"ip netns exec {hub} ip link add br0 type bridge",
             f"ip netns exec {hub} ip link set br0 up"]
    for i, ns in enumerate(members):
        lines += [f"ip netns add {ns}",
                  f"ip netns exec {hub} ip link add veth{i} type veth peer name p{i}",
                  f"ip netns exec {hub} ip link set veth{i} netns {ns}",
                  f"ip netns exec {ns} ip addr add {_address(i, n)} dev veth{i}",
                  f"ip netns exec {ns} ip link set veth{i} up",
                  f"ip netns exec {ns} ip link set lo up",
                  f"ip netns exec {hub} ip link set p{i} master br0",
                  f"ip netns exec {hub} ip link set p{i} up"]
    lines.append(f"ip netns exec {members[0]} ping -c1 -W1 -q {_address(n - 1, n, False)}"
                 " >/dev/null")
    lines += [f"ip netns del {ns}" for ns in members + [hub]]
    return "\n".join(lines) + "\n"


def _address(i: int, n: int, prefix: bool = True) -> str:
    """Host i+1 of 10.0.0.0/22 (enough for 1,000 namespaces)."""
    host = i + 1
    text = f"10.0.{host // 256}.{host % 256}"
    return f"{text}/22" if prefix else text


def vethwrap_commands(members: list[str]) -> list[list[str]]:
    """create (verified) && ping first last && destroy, as a user types them."""
    cli = [sys.executable, "-m", "veth_wrap"]
    lab = members[0][:-1]
    return [cli + ["create", *members, "--lab", lab],
            cli + ["ping", "-c", "1", members[0], members[-1]],
            cli + ["destroy", "--lab", lab]]


def run_once(way: str, members: list[str]) -> float:
    """Seconds one way takes, start to finish; raise if any command fails."""
    start = time.perf_counter()
    if way == "vethwrap":
        for argv in vethwrap_commands(members):
            done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, env=dict(os.environ, NO_COLOR="1"))
            if done.returncode:
                raise RuntimeError(f"{' '.join(argv[2:4])} failed: {done.stderr.strip()}")
    else:
        text = lean_script(members) if way == "lean bash" else tutorial_script(members)
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
            script.write(text)
            script.flush()
            subprocess.run(["bash", script.name], check=True)
    return time.perf_counter() - start


def byte_compile() -> None:
    """Compile the package the CLI imports, as an install does, before anything is timed.

    A checkout has no up-to-date bytecode after an edit, and PYTHONDONTWRITEBYTECODE keeps
    it that way: every timed run would then pay for compiling the source again.
    """
    spec = importlib.util.find_spec("veth_wrap")
    if spec and spec.submodule_search_locations:
        subprocess.run([sys.executable, "-m", "compileall", "-q",
                        *spec.submodule_search_locations], stdout=subprocess.DEVNULL, check=False)


def settle(n: int) -> None:
    """Let the kernel finish the previous run's asynchronous namespace cleanup (not timed)."""
    time.sleep(0.2 + n / 1000)


def bench(sizes: list[int], reps: int, names: Names) -> dict:
    """Median seconds per way and size; ways interleaved so drift hits them alike."""
    results: dict = {}
    for n in sizes:
        times: dict[str, list[float]] = {way: [] for way in WAYS}
        for rep in range(reps):
            for way in WAYS:
                times[way].append(run_once(way, names.members(way, rep, n)))
                names.cleanup()
                settle(n)
        results[n] = {way: statistics.median(values) for way, values in times.items()}
        print(f"N={n}: " + ", ".join(f"{w} {results[n][w]:.3f}s" for w in WAYS),
              file=sys.stderr)
    return results


def print_table(results: dict) -> None:
    """Medians and ratios against lean bash, as plain text (markdown)."""
    heads = [f"N={n}" + (" pair" if n == 2 else "") for n in results]
    print("| way | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(heads))
    for way in WAYS:
        cells = []
        for row in results.values():
            ratio = row[way] / row["lean bash"]
            cells.append(f"{ratio:.2f}x ({_fmt(row[way])})")
        print(f"| {way} | " + " | ".join(cells) + " |")
    for n, row in results.items():
        print(f"per namespace at N={n}: vethwrap {row['vethwrap'] / n * 1000:.2f} ms, "
              f"lean bash {row['lean bash'] / n * 1000:.2f} ms")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> int:
    """Parse options, run, print; always clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--thousand", action="store_true", help="also N=1000")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per way and size")
    parser.add_argument("--prefix", default="vwbench", help="namespace name prefix")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.py: needs root (it creates namespaces); run it with sudo", file=sys.stderr)
        return 2
    sizes = args.sizes + ([1000] if args.thousand and 1000 not in args.sizes else [])
    names = Names(args.prefix)
    byte_compile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        results = bench(sizes, args.reps, names)
    except KeyboardInterrupt:
        return 130
    finally:
        names.cleanup()
    if args.json:
        print(json.dumps({str(n): row for n, row in results.items()}, indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
