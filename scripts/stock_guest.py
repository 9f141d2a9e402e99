#!/usr/bin/env python3
"""Run a shell command inside Debian's stock kernel under QEMU (virtme-ng) and carry out its result.

    scripts/stock_guest.py RESULTDIR [--kernel VMLINUZ] [--timeout S] [--env K=V] -- COMMAND

The guest's root is this machine's own file tree, read-only (virtme-ng's overlays make /etc,
/tmp, /var ... writable inside, and what is written there stays in the guest); RESULTDIR is the one
directory whose writes come back. The guest boots with TCG (`--disable-kvm`: a KVM boot hangs on
these machines) and runs RESULTDIR/guest.sh, written here, which

  - mounts the hot read-only directories (programs, libraries, the interpreter, the checkout)
    again from the host with 9p's page cache on (`cache=loose`), over themselves and inside the
    guest only: virtme-ng's root has no cache, so every exec and import went back to the host
    through QEMU's main thread, which then used more CPU than both vCPUs together;
  - puts the checkout on PYTHONPATH and starts in it, with VETHWRAP_IN_GUEST=1;
  - runs COMMAND with `sh -c` (COMMAND may use $RESULTS, the guest's path of RESULTDIR);
  - writes COMMAND's exit status to RESULTDIR/rc and the guest's uptime before and after to
    RESULTDIR/uptime.

vng's own exit status is 255 whatever happened inside, so this reads RESULTDIR/rc and exits with
it; 125 when no status came out (the guest did not boot, or hit --timeout). The console (kernel
messages and the command's terminal output) is kept in RESULTDIR/console.log. Without --kernel,
scripts/stock_kernel.sh prepares the lane and names the kernel.

VETHWRAP_STOCK_QEMU_OPTS adds QEMU options (e.g. `-cpu ...`, which overrides vng's `-cpu max`).

Only the processes started here are ever signalled: vng runs in a session of its own and, on a
timeout, that session's process group is ended.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREPARE = ROOT / "scripts" / "stock_kernel.sh"
VENV = Path(os.environ.get("VETHWRAP_VNG_VENV", "/opt/vethwrap-vng"))
NO_RESULT = 125
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# read-only and hot: every exec of ip, tc, ping and python, and every import
CACHED = ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", sys.base_prefix, sys.prefix)
MSIZE = 524288


def prepare() -> Path:
    """Run the preparation script; the vmlinuz path it prints last."""
    done = subprocess.run(["bash", str(PREPARE)], stdout=subprocess.PIPE, text=True, check=False)
    lines = done.stdout.split()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"stock_guest: {PREPARE.name} failed (exit {done.returncode})")
    return Path(lines[-1])


def cached_dirs(extra: list[Path]) -> list[Path]:
    """Existing real directories to mount again with a cache, outermost first, no repeats."""
    found: list[Path] = []
    for path in [*map(Path, CACHED), *extra]:
        real = path.resolve()
        if real.is_dir() and real != Path("/") and real not in found:
            found.append(real)
    # a directory inside another one already listed is covered by it
    kept = [p for p in found if not any(q != p and q in p.parents for q in found)]
    return sorted(kept, key=lambda p: len(p.parts))


def guest_script(results: Path, checkout: Path, env: dict[str, str], command: str,
                 cached: list[Path]) -> str:
    """The shell script the guest runs: cached mounts, environment, COMMAND, its exit status."""
    exports = {"PATH": GUEST_PATH, "PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1",
               "VETHWRAP_IN_GUEST": "1", "NO_COLOR": "1", "RESULTS": str(results), **env}
    lines = ["#!/bin/sh", "# written by scripts/stock_guest.py; runs inside the guest"]
    for i, path in enumerate(cached):
        where = shlex.quote(str(path))
        lines.append(f"/bin/mount -n -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,"
                     f"msize={MSIZE} vwcache{i} {where} || echo 'no cached mount on '{where} >&2")
    lines.append(f"cd {shlex.quote(str(checkout))} || exit 1")
    lines += [f"export {key}={shlex.quote(value)}" for key, value in exports.items()]
    lines += [
        'read up _ </proc/uptime; echo "start $up" >"$RESULTS/uptime"',
        f"sh -c {shlex.quote(command)}",
        'echo $? >"$RESULTS/rc.tmp" && mv "$RESULTS/rc.tmp" "$RESULTS/rc"',
        'read up _ </proc/uptime; echo "end $up" >>"$RESULTS/uptime"',
        "sync",
    ]
    return "\n".join(lines) + "\n"


def vng_argv(kernel: Path, results: Path, cpus: int, memory: str,
             cached: list[Path]) -> list[str]:
    """vng with TCG, the guest's output visible (-v), RESULTDIR writable, guest.sh as command."""
    exports = " ".join(
        f"-fsdev local,id=vwcache{i},path={path},security_model=none,readonly=on,multidevs=remap"
        f" -device virtio-9p-pci,fsdev=vwcache{i},mount_tag=vwcache{i}"
        for i, path in enumerate(cached))
    exports = " ".join(filter(None, [exports, os.environ.get("VETHWRAP_STOCK_QEMU_OPTS", "")]))
    argv = [str(VENV / "bin" / "vng"), "--disable-kvm", "--force-9p", "-v", "-r", str(kernel),
            "--memory", memory, "--cpus", str(cpus), f"--rwdir={results}"]
    if exports:
        argv.append(f"--qemu-opts={exports}")
    return [*argv, "-e", f"sh {results}/guest.sh"]


def run(kernel: Path, results: Path, command: str, *, checkout: Path = ROOT,
        env: dict[str, str] | None = None, timeout: float = 1200, cpus: int = 2,
        memory: str = "1G", cache: bool = True) -> int:
    """Boot, run COMMAND in the guest, return its exit status (NO_RESULT when none came out)."""
    results.mkdir(parents=True, exist_ok=True)
    for stale in ("rc", "rc.tmp", "uptime"):
        (results / stale).unlink(missing_ok=True)
    cached = cached_dirs([checkout]) if cache else []
    if any(results == p or p in results.parents for p in cached):
        raise SystemExit(f"stock_guest: RESULTDIR {results} is inside a cached directory")
    (results / "guest.sh").write_text(guest_script(results, checkout, env or {}, command,
                                                   cached))
    # vng calls virtme-run by name; -v sends the guest's output to our stdout/stderr
    host_env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ.get('PATH', GUEST_PATH)}")
    started = time.monotonic()
    with open(results / "console.log", "wb") as console:
        # a pipe, not the file itself: virtme opens /proc/self/fd/1 and /2 once per channel
        proc = subprocess.Popen(vng_argv(kernel, results, cpus, memory, cached),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=host_env, cwd=checkout,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
            out += f"\nstock_guest: timed out after {timeout:g} s\n".encode()
        console.write(out)
    (results / "wall").write_text(f"{time.monotonic() - started:.1f}\n")
    rc = results / "rc"
    if not rc.exists():
        return NO_RESULT
    try:
        return int(rc.read_text().strip())
    except ValueError:
        return NO_RESULT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(usage="%(prog)s RESULTDIR [options] -- COMMAND",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="directory the guest may write; created")
    parser.add_argument("--kernel", type=Path, help="vmlinuz (default: prepare the lane)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="tree put on PYTHONPATH")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds for the whole boot")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--memory", default="1G")
    parser.add_argument("--no-cache", action="store_true",
                        help="leave every directory on virtme-ng's uncached root")
    parser.add_argument("--env", action="append", default=[], metavar="K=V",
                        help="exported in the guest before COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        parser.parse_args(argv)  # --help, or the missing RESULTDIR
        parser.error("no -- COMMAND")
    cut = argv.index("--")
    args, command = parser.parse_args(argv[:cut]), argv[cut + 1:]
    if not command:
        parser.error("no COMMAND after --")
    env = dict(item.split("=", 1) for item in args.env)
    kernel = args.kernel or prepare()
    results = args.results.resolve()
    if str(results).startswith("/var/tmp"):
        parser.error("the guest cannot see /var/tmp; put RESULTDIR elsewhere (e.g. under /tmp)")
    script = command[0] if len(command) == 1 else shlex.join(command)
    code = run(kernel, results, script, checkout=args.checkout.resolve(), env=env,
               timeout=args.timeout, cpus=args.cpus, memory=args.memory,
               cache=not args.no_cache)
    if code == NO_RESULT:
        print(f"stock_guest: no exit status came out; see {results}/console.log", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
