"""Re-record tests/data/diagnose/NAME.json from a real run (root; makes namespaces).

Each recording keeps the shell lines that build its broken lab (`built_with`, with namespaces
called ns0, ns1, ...). This builds that lab under prefixed names, runs diagnose() through a
runner that writes down every command (argv, stdin, stdout, stderr, return code), deletes the
namespaces by exact name, and writes the calls back with the prefix taken out. `ip netns
list` is answered with the lab's namespaces only, so a replay does not depend on the host.

    python3 scripts/record_diagnose.py [NAME ...]    (default: every recording)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from veth_wrap.explain.diagnose import diagnose  # noqa: E402
from veth_wrap.model.destination import parse_address  # noqa: E402
from veth_wrap.run.runner import Result, ShRunner, listed_netns  # noqa: E402

DATA = ROOT / "tests" / "data" / "diagnose"
PREFIX = f"dgyr{os.getpid() % 1000}x"
NAME = re.compile(r"\b(ns\d+|hub\d+)\b")


class Recorder:
    """Runs through ShRunner and writes every call down; netns list shows the lab only."""

    def __init__(self, lab: set[str]) -> None:
        self.inner, self.lab, self.calls = ShRunner(), lab, []

    def run(self, argv, stdin=None, check=True) -> Result:
        result = self.inner.run(argv, stdin=stdin, check=False)
        if list(argv) == ["ip", "-j", "netns", "list"]:
            kept = [e for e in json.loads(result.stdout or "[]") if e["name"] in self.lab]
            result = Result(result.argv, json.dumps(kept) + "\n", result.stderr,
                            result.returncode)
        self.calls.append({"argv": list(argv), "stdin": stdin, "stdout": result.stdout,
                           "stderr": result.stderr, "returncode": result.returncode})
        if check and result.returncode:
            from veth_wrap.errors import CommandFailed

            raise CommandFailed(tuple(argv), result.returncode, result.stderr, stdin or "")
        return result

    def netns(self, bound: bool = False) -> list[str]:
        """The lab's namespaces, read by a recorded `ip -j netns list` for the replay."""
        return listed_netns(self)


def prefixed(text: str) -> str:
    return NAME.sub(lambda m: PREFIX + m.group(1), text)


def plain(value):
    """The value with the prefix taken out of every string in it."""
    if isinstance(value, str):
        return value.replace(PREFIX, "")
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def record(name: str) -> None:
    path = DATA / f"{name}.json"
    data = json.loads(path.read_text())
    lab = {PREFIX + n for line in data["built_with"] for n in NAME.findall(line)}
    try:
        for line in data["built_with"]:
            subprocess.run(["sh", "-ec", prefixed(line)], check=True)
        runner = Recorder(lab)
        result = diagnose(PREFIX + data["namespace"], parse_address(data["destination"]),
                          runner=runner)
    finally:
        for ns in sorted(lab):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
    found = plain(result.to_json())
    data["expected"] = {k: found[k] for k in ("namespace", "destination", "reachable", "cause",
                                              "summary", "evidence", "fixes", "fix_script",
                                              "checked")}
    data["calls"] = plain(runner.calls)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{name}: {found['cause']}, {len(runner.calls)} calls")


if __name__ == "__main__":
    for item in sys.argv[1:] or sorted(p.stem for p in DATA.glob("*.json")
                                       if "built_with" in json.loads(p.read_text())):
        record(item)
