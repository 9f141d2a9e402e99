"""Re-record the `ip -j` fixtures in this directory (run as root from the repository root).

Each scenario builds a lab with vethwrap, then saves the `ip -batch` stdin that state.read
sends and the stdout that ip printed, byte for byte; finally it removes what it built.
Names start with `h3` so that they cannot collide with a real lab or with the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCENARIOS = {
    # name: (commands to run first, namespaces to read, forwarding namespaces)
    "pair": ([["create", "h3p0", "h3p1"]], ["h3p0", "h3p1"], []),
    "bridge": ([["create", "h3b0", "h3b1", "h3b2", "--lab", "h3bl"]],
               ["h3b0", "h3b1", "h3b2", "vethwrap-h3bl"], []),
    "chain": ([["create", "h3c0", "h3c1", "h3c2", "-t", "chain"]],
              ["h3c0", "h3c1", "h3c2"], ["h3c1"]),
    "kept": ([["ip", "netns", "add", "h3e0"], ["create", "h3e0", "h3e1"]], ["h3e0", "h3e1"], []),
    "plain": ([["ip", "netns", "add", "h3f0"]], ["h3f0"], []),
}


def batch_lines(namespaces: list[str], forwarding: list[str]) -> str:
    """The same lines state.read sends (routes included)."""
    lines = []
    for ns in namespaces:
        lines += [f"netns exec {ns} ip -j -d addr show", f"netns exec {ns} ip -j route show"]
    lines += [f"netns exec {ns} sysctl -n net.ipv4.ip_forward" for ns in forwarding]
    return "".join(line + "\n" for line in lines)


def run(words: list[str]) -> None:
    argv = words if words[0] == "ip" else [sys.executable, "-m", "veth_wrap", *words]
    subprocess.run(argv, check=True, capture_output=True)


def record(name: str) -> None:
    commands, namespaces, forwarding = SCENARIOS[name]
    try:
        for words in commands:
            run(words)
        stdin = batch_lines(namespaces, forwarding)
        out = subprocess.run(["ip", "-batch", "-"], input=stdin, check=True,
                             capture_output=True, text=True).stdout
        (HERE / f"{name}.in").write_text(stdin)
        (HERE / f"{name}.out").write_text(out)
        listing = json.loads(subprocess.run(["ip", "-j", "netns", "list"], check=True,
                                            capture_output=True, text=True).stdout)
        mine = [entry for entry in listing if entry["name"] in namespaces]
        (HERE / f"{name}.netns.json").write_text(json.dumps(mine) + "\n")
    finally:
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    for scenario in sys.argv[1:] or SCENARIOS:
        record(scenario)
