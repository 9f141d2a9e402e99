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
from veth_wrap.run import nofollow
from veth_wrap.run.lock import LOCK_DIR, open_dir
from veth_wrap.run.runner import require

KILL_WAIT = 5.0  # seconds a SIGKILLed process may take to go (it may be in the kernel)


class StillRunning(VethwrapError):
    """A process outlived SIGKILL (stuck in the kernel); its namespace cannot go yet."""


def open_log(lab: str, netns: str, name: str) -> tuple[int, str]:
    """Create LOG_ROOT/LAB/NS/NAME.log afresh (0600, folders 0700), never through a symlink."""
    os.close(open_dir(LOCK_DIR))  # refuses a /run/vethwrap owned by someone else
    fd = nofollow.open_dir(f"{LOG_ROOT}/{lab}/{netns}", create=0o700)
    path = f"{LOG_ROOT}/{lab}/{netns}/{name}.log"
    try:
        log = nofollow.open_in(fd, f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                               | os.O_CLOEXEC, path)
    finally:
        os.close(fd)
    return log, path


def start(netns: str, argv: Sequence[str], env: Mapping[str, str], log_fd: int,
          **popen: object) -> subprocess.Popen:
    """Start argv inside netns in a session of its own, stdio to the log (or as asked)."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", log_fd)
    popen.setdefault("stderr", subprocess.STDOUT if popen["stdout"] == log_fd else None)
    return subprocess.Popen([require("ip"), "netns", "exec", netns, *argv], env=dict(env),
                            start_new_session=True, **popen)


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


def stop(procs: Sequence[Proc], grace: float) -> list[Stopped]:
    """SIGTERM, up to grace seconds, then SIGKILL; returns once every process is gone.

    pidfds pin the processes found, so a PID reused meanwhile is never signalled.
    """
    fds, done = _pin(procs)
    _signal(fds, signal.SIGTERM)
    left = _wait(fds, grace)
    done += [Stopped(fds[fd], "SIGTERM") for fd in fds if fd not in left]
    _signal(left, signal.SIGKILL)
    stuck = _wait(left, KILL_WAIT)
    done += [Stopped(left[fd], "SIGKILL") for fd in left if fd not in stuck]
    for fd in fds:
        os.close(fd)
    if stuck:
        proc = next(iter(stuck.values()))
        raise StillRunning(f"process {proc.pid} ({proc.command()}) did not end after SIGKILL",
                           f"it is stuck in the kernel; see 'cat /proc/{proc.pid}/stack', "
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


def _wait(fds: Mapping[int, Proc], seconds: float) -> dict[int, Proc]:
    """Wait until every pidfd is readable (its process ended) or seconds pass; the rest."""
    left = dict(fds)
    deadline = time.monotonic() + seconds
    poller = select.poll()
    for fd in left:
        poller.register(fd, select.POLLIN)
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for fd, _ in poller.poll(remaining * 1000):
            poller.unregister(fd)
            left.pop(fd, None)
    return left
