"""Start services inside namespaces and stop processes: the only code that signals them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from typing import Mapping, Optional, Sequence

from veth_wrap.errors import VethwrapError
from veth_wrap.model.procfacts import LOG_ROOT, Proc, Stopped
from veth_wrap.run import cgroups, rundir
from veth_wrap.run.runner import require

KILL_WAIT = 5.0  # seconds a SIGKILLed process may take to go (it may be in the kernel)
LOG_DIR = LOG_ROOT.rsplit("/", 1)[1]
RECORD = ".service.json"  # beside NAME.log: what NAME was asked to be
TICK = 0.02  # seconds between reads of cgroup.events while waiting


class StillRunning(VethwrapError):
    """A process outlived SIGKILL (stuck in the kernel); its namespace cannot go yet."""


def open_log(lab: str, netns: str, name: str) -> tuple[int, str]:
    """Create LOG_ROOT/LAB/NS/NAME.log afresh (0600, folders 0700), never through a symlink."""
    return (rundir.write_file([LOG_DIR, lab, netns], f"{name}.log"),
            f"{LOG_ROOT}/{lab}/{netns}/{name}.log")


def write_record(lab: str, netns: str, name: str, text: str) -> None:
    """Keep what the service was asked to be beside its log (restart reads it)."""
    fd = rundir.write_file([LOG_DIR, lab, netns], f"{name}{RECORD}")
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_record(lab: str, netns: str, name: str) -> Optional[str]:
    """The service's record, None when it has none."""
    fd = rundir.read_file([LOG_DIR, lab, netns], f"{name}{RECORD}")
    if fd is None:
        return None
    with os.fdopen(fd, errors="replace") as f:
        return f.read()


def start(netns: str, argv: Sequence[str], env: Mapping[str, str], log_fd: Optional[int],
          cgroup_procs: Optional[int] = None, **popen: object) -> subprocess.Popen:
    """Start argv inside netns in a session of its own, stdio to the log (or as asked).

    With cgroup_procs (an open cgroup.procs), the child joins that cgroup before it execs,
    so the service's first instruction already runs inside it.
    """
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", log_fd)
    popen.setdefault("stderr", subprocess.STDOUT if popen["stdout"] == log_fd else None)
    if cgroup_procs is not None:
        popen["preexec_fn"] = cgroups.joiner(cgroup_procs)
    return subprocess.Popen([require("ip"), "netns", "exec", netns, *argv], env=dict(env),
                            start_new_session=True, **popen)


def probe(netns: str, argv: Sequence[str], timeout: float) -> bool:
    """Run a readiness command inside netns once; True when it exits 0 within timeout."""
    try:
        done = subprocess.run([require("ip"), "netns", "exec", netns, *argv],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        return False
    except OSError:
        return False
    return done.returncode == 0


def netns_inode_of(pid: int) -> Optional[int]:
    """The network namespace inode of a process now (None once it is gone)."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return int(link[5:-1])


def entered(pid: int, inode: int, deadline: float) -> bool:
    """Wait until pid runs in the namespace (ip netns exec has switched); False if it died."""
    while time.monotonic() < deadline:
        now = netns_inode_of(pid)
        if now == inode:
            return True
        if now is None or exited(pid, 0.002):
            return False
    return False


def exited(pid: int, timeout: float) -> bool:
    """Wait up to timeout for pid to end; True when it has (a zombie counts as ended)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def stop(procs: Sequence[Proc], grace: float, groups: Sequence[str] = ()) -> list[Stopped]:
    """SIGTERM, up to grace seconds, then SIGKILL; returns once every process is gone.

    pidfds pin the processes found, so a PID reused meanwhile is never signalled. The
    cgroups of services (groups) are waited for as a whole and emptied with cgroup.kill, which
    also ends what they forked meanwhile; then they are removed.
    """
    fds, done = _pin(procs)
    _signal(fds, signal.SIGTERM)
    left = _wait(fds, grace, groups)
    done += [Stopped(fds[fd], "SIGTERM") for fd in fds if fd not in left]
    _signal(left, signal.SIGKILL)
    for group in groups:
        if cgroups.populated(group):
            cgroups.kill(group)
    stuck = _wait(left, KILL_WAIT, groups)
    done += [Stopped(left[fd], "SIGKILL") for fd in left if fd not in stuck]
    for fd in fds:
        os.close(fd)
    busy = [group for group in groups if not cgroups.remove(group)]
    if stuck or busy:
        pid = next(iter(stuck.values())).pid if stuck else (cgroups.members(busy[0]) or [0])[0]
        raise StillRunning(f"process {pid} did not end after SIGKILL",
                           f"it is stuck in the kernel; see 'cat /proc/{pid}/stack', "
                           "then run destroy again")
    return done


def _pin(procs: Sequence[Proc]) -> tuple[dict[int, Proc], list[Stopped]]:
    fds, gone = {}, []
    for proc in procs:
        try:
            fd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            gone.append(Stopped(proc, "gone"))
            continue
        if netns_inode_of(proc.pid) != proc.netns_inode:  # ended, and the PID was reused
            os.close(fd)
            gone.append(Stopped(proc, "gone"))
            continue
        fds[fd] = proc
    return fds, gone


def _signal(fds: Mapping[int, Proc], signum: int) -> None:
    for fd in fds:
        try:
            signal.pidfd_send_signal(fd, signum)
        except ProcessLookupError:
            pass


def _wait(fds: Mapping[int, Proc], seconds: float, groups: Sequence[str] = ()
          ) -> dict[int, Proc]:
    """Wait until every pidfd is readable (its process ended) and every group is empty, or
    seconds pass; the processes left."""
    left = dict(fds)
    deadline = time.monotonic() + seconds
    poller = select.poll()
    for fd in left:
        poller.register(fd, select.POLLIN)
    busy = list(groups)
    while left or busy:
        busy = [group for group in busy if cgroups.populated(group)]
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not (left or busy):
            break
        for fd, _ in poller.poll(min(remaining, TICK if busy else remaining) * 1000):
            poller.unregister(fd)
            left.pop(fd, None)
    return left
