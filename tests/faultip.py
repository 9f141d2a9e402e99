"""A fault-injecting `ip` for tests: a shell wrapper placed first on PATH.

It counts its top-level calls (a batch is one call; the `ip` that `ip netns exec` starts is
not counted, except one that reads a batch file: a step the walker ran inside a root batch,
run/fuse), passes every call, stdin included, to the real ip, except call K, which it
fails, rewrites (one batch line becomes a line the kernel refuses), or slows down. Such a
step's batch file is given to the real ip on stdin, so every mode treats it alike.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

REAL_IP = shutil.which("ip") or "/usr/sbin/ip"
REFUSED_LINE = "link add lo type dummy"  # lo exists in every namespace: "File exists"

_SCRIPT = r"""#!/bin/sh
d=$(dirname "$0")
real=@REAL@
if [ -n "$VWF_INNER" ]; then
  file=""
  for a in "$@"; do file=$a; done
  case "$file" in /dev/fd/*) ;; *) exec "$real" "$@" ;; esac
  exec < "$file"
  total=$#; i=0
  for a do
    i=$((i + 1)); [ $i -eq 1 ] && set --
    [ $i -eq $total ] && a=/dev/stdin
    set -- "$@" "$a"
  done
fi
export VWF_INNER=1
name=-
for a in "$@"; do [ "$a" = "/dev/stdin" ] && name=/dev/stdin; done
# the lock in a subshell: this shell's descriptors (a step's batch file) pass on untouched
n=$( (
  flock 9
  n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$d/count"
  echo "$n"
) 9>>"$d/count.lock" )
printf '%s\n' "$n $*" >> "$d/log"
batch=no
for a in "$@"; do [ "$a" = "-batch" ] && batch=yes; done
if [ "$n" != "$(cat "$d/at" 2>/dev/null)" ]; then
  if [ "$batch" = yes ] && [ -e "$d/record" ]; then
    tee "$d/stdin.$n" | "$real" "$@"
    exit $?
  fi
  exec "$real" "$@"
fi
case "$(cat "$d/mode")" in
  fail)
    echo "RTNETLINK answers: File exists" >&2
    [ "$batch" = yes ] && echo "Command failed $name:1" >&2
    exit 2 ;;
  message)
    cat "$d/message" >&2
    exit 2 ;;
  line)
    sed "$(cat "$d/line")s/.*/@REFUSED@/" | "$real" "$@"
    exit $? ;;
  sleep)
    echo $$ > "$d/pid"
    touch "$d/reached"
    sleep "$(cat "$d/seconds")"
    "$real" "$@"
    rc=$?
    touch "$d/finished"
    exit $rc ;;
  midbatch)
    cat > "$d/batch"
    m=$(cat "$d/line")
    echo $$ > "$d/pid"
    { sed -n "1,${m}p" "$d/batch"; sleep 0.3; touch "$d/reached"; sleep 60;
      sed -n "$((m + 1)),\$p" "$d/batch"; } | "$real" "$@"
    exit $? ;;
esac
exec "$real" "$@"
"""


class FaultyIp:
    """The wrapper and its control files, in one directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        script = self.dir / "ip"
        script.write_text(_SCRIPT.replace("@REAL@", REAL_IP).replace("@REFUSED@", REFUSED_LINE))
        script.chmod(0o755)
        self.path = f"{self.dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"

    def reset(self, at: int = 0, mode: str = "pass", record: bool = False, **values) -> None:
        """Count from zero; call `at` gets `mode` (fail, message, line, sleep, midbatch)."""
        for name in ("count", "log", "reached", "finished", "pid", "record", "batch"):
            (self.dir / name).unlink(missing_ok=True)
        for old in self.dir.glob("stdin.*"):
            old.unlink()
        (self.dir / "at").write_text(str(at))
        (self.dir / "mode").write_text(mode)
        if record:
            (self.dir / "record").touch()
        for name, value in values.items():
            (self.dir / name).write_text(str(value))

    @property
    def count(self) -> int:
        """How many top-level calls were made since the last reset."""
        path = self.dir / "count"
        return int(path.read_text()) if path.exists() else 0

    def calls(self) -> list[str]:
        """The argv of each call, as logged."""
        path = self.dir / "log"
        return path.read_text().splitlines() if path.exists() else []

    def batch_lines(self, call: int) -> int:
        """How many stdin lines a recorded batch call had (0 when it was not a batch)."""
        path = self.dir / f"stdin.{call}"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def env(self, **extra: str) -> dict:
        """An environment for a subprocess that finds the wrapper first."""
        return dict(os.environ, PATH=self.path, **extra)

    def runner(self, monkeypatch):
        """A ShRunner that finds the wrapper first (PATH is changed for this test only)."""
        from veth_wrap.run.runner import ShRunner

        monkeypatch.setenv("PATH", self.path)
        return ShRunner()

    def pid(self) -> Optional[int]:
        """The pid (and process group) of the slowed call, once it has started."""
        path = self.dir / "pid"
        return int(path.read_text()) if path.exists() else None


def netns_facts(ns: str) -> dict:
    """Everything a test compares in a namespace: links (with lo state), addresses, routes."""

    def run(*args: str) -> str:
        return subprocess.run([REAL_IP, "-n", ns, *args], capture_output=True, text=True,
                              check=True).stdout

    forwarding = subprocess.run([REAL_IP, "netns", "exec", ns, "sysctl", "-n",
                                 "net.ipv4.ip_forward"], capture_output=True, text=True).stdout
    # the qdisc of lo changes from noop to noqueue once it has been up: not ours to compare
    links = re.sub(r" qdisc \S+", "", run("-o", "link", "show"))
    return {"links": links, "addrs": run("-o", "addr", "show"),
            "routes": run("route", "show", "table", "all"), "forwarding": forwarding}


def snapshot(namespaces: list[str]) -> tuple:
    """`ip netns list`, root `ip link` and the facts of each given (pre-existing) namespace."""
    from conftest import RUN_ID, kernel_snapshot

    spaces, links = kernel_snapshot()
    # only this run's namespaces: other runs on the same machine come and go meanwhile
    spaces = [ns for ns in spaces if f"vt{RUN_ID}" in ns]
    return (spaces, links), {ns: netns_facts(ns) for ns in namespaces}


def decorate(ns: str, address: str = "192.0.2.1/24") -> None:
    """Give a pre-existing namespace something to lose: a veth pair, an address, a route."""
    gateway = address.rsplit(".", 1)[0] + ".254"
    for args in (("link", "add", "decoy0", "type", "veth", "peer", "name", "decoy1"),
                 # no IPv6 link-local addresses: their DAD would change the facts meanwhile
                 ("link", "set", "decoy0", "addrgenmode", "none"),
                 ("link", "set", "decoy1", "addrgenmode", "none"),
                 ("addr", "add", address, "dev", "decoy0"), ("link", "set", "decoy0", "up"),
                 ("link", "set", "decoy1", "up"),
                 ("route", "add", "198.51.100.0/24", "via", gateway)):
        subprocess.run([REAL_IP, "-n", ns, *args], check=True, capture_output=True)


def differences(before: tuple, after: tuple) -> str:
    """A readable account of what differs between two snapshots ('' when nothing does)."""
    import difflib

    out = []
    if before[0] != after[0]:
        out.append(f"kernel: {before[0]} -> {after[0]}")
    for ns, facts in before[1].items():
        for key, text in facts.items():
            new = after[1].get(ns, {}).get(key, "")
            if new != text:
                diff = difflib.unified_diff(text.splitlines(), new.splitlines(), lineterm="", n=0)
                out.append(f"{ns} {key}: " + " | ".join(list(diff)[2:]))
    return "\n".join(out)


def wiring(ns: str) -> tuple:
    """What a lab namespace is wired with, without what settles by itself (carrier, IPv6 DAD)."""
    import json

    def run(*args: str):
        text = subprocess.run([REAL_IP, "-n", ns, "-j", *args], capture_output=True, text=True,
                              check=True).stdout
        return json.loads(text or "[]")

    links = sorted((item["ifname"], item.get("ifalias", ""), "UP" in item.get("flags", []),
                    tuple(a["local"] for a in item.get("addr_info", []) if a["family"] == "inet"))
                   for item in run("-d", "addr", "show"))
    routes = sorted(json.dumps(route, sort_keys=True) for route in run("-4", "route", "show"))
    return links, routes
