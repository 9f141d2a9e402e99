"""cgroup v2 folders, one per service: made, joined before exec, limited, emptied and removed.

They live under a `vethwrap` folder of the unified hierarchy: /sys/fs/cgroup on a pure
cgroup v2 host, /sys/fs/cgroup/unified on a hybrid one (whose v2 has no controllers, so no
limits). The kernel keeps every process of a service in its folder, whatever it forks or
rewrites, and says when the last one is gone (cgroup.events: populated 0).
"""

from __future__ import annotations

import errno
import os
import signal
from functools import lru_cache
from typing import Optional

from veth_wrap.errors import PreflightError
from veth_wrap.model.servicespec import CGROUP_TOP, Limits, parse_cgroup_name

PREFERRED = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
OPTIONAL = ("memory.swap.max",)  # absent without swap accounting: no swap to limit then


@lru_cache(maxsize=1)
def hierarchy() -> str:
    """Where the cgroup v2 hierarchy is mounted (the preferred place when it is there)."""
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split()[:1] == ["cgroup2"]:
                    found.append(left.split()[4])
    except OSError:
        pass
    for place in PREFERRED:
        if place in found:
            return place
    if not found:
        raise PreflightError("no cgroup v2 hierarchy is mounted: services need one",
                             "mount it: mount -t cgroup2 none /sys/fs/cgroup/unified")
    return found[0]


def see_hierarchy() -> None:
    """Mount cgroup v2 on /sys/fs/cgroup when this process, a service, cannot see it.

    A service runs under ip netns exec, always in a mount namespace of its own whose fresh
    /sys hides the host's cgroup mounts: the mount gives it the same hierarchy, for it and
    its children only. Any other process is refused as before: the host's mounts never change.
    """
    try:
        hierarchy()
        return
    except PreflightError:
        own = own_cgroup(os.getpid()) or ""
        if not own.startswith(f"/{CGROUP_TOP}/"):
            raise
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    flags = 0x2 | 0x4 | 0x8  # MS_NOSUID | MS_NODEV | MS_NOEXEC, as systemd mounts it
    if libc.mount(b"cgroup2", b"/sys/fs/cgroup", b"cgroup2", flags, None) != 0:
        code = ctypes.get_errno()
        raise PreflightError(f"cannot mount cgroup v2 where services start services: "
                             f"{os.strerror(code)}", "run the timeline's faults one by one")
    hierarchy.cache_clear()


def top() -> str:
    """vethwrap's folder in the hierarchy (it may not exist)."""
    return f"{hierarchy()}/{CGROUP_TOP}"


def path(folder: str) -> str:
    """A service's cgroup folder."""
    return f"{top()}/{folder}"


def controllers() -> set[str]:
    """The controllers the hierarchy holds (none on a hybrid host)."""
    return set(_read(f"{hierarchy()}/cgroup.controllers").split())


def check_limits(limits: Limits) -> None:
    """Refuse limits this host's cgroup v2 cannot enforce, saying why."""
    missing = [name for name in limits.controllers() if name not in controllers()]
    if missing:
        have = controllers()
        why = ("it has no controllers: this host keeps them in cgroup v1" if not have
               else f"it has only {', '.join(sorted(have))}")
        raise PreflightError(
            f"limits need cgroup v2's {' and '.join(missing)} controller"
            f"{'s' if len(missing) > 1 else ''}, and {hierarchy()} lacks "
            f"{'them' if len(missing) > 1 else 'it'} ({why})",
            "run without --memory/--cpus, or on a host booted with a pure cgroup v2 "
            "hierarchy (systemd.unified_cgroup_hierarchy=1)")


def make(folder: str, limits: Limits) -> int:
    """Create the service's cgroup (afresh), set its limits; returns its cgroup.procs, open."""
    try:
        return _make(folder, limits)
    except OSError as exc:
        raise PreflightError(f"cannot make the service's cgroup {path(folder)}: "
                             f"{exc.strerror}", "services need a writable cgroup v2 hierarchy: "
                             "run as root on the host (see 'vethwrap doctor')") from None


def _make(folder: str, limits: Limits) -> int:
    where = path(folder)
    for again in (True, False):
        _mkdir(top())
        if limits:
            _enable(hierarchy(), limits.controllers())
            _enable(top(), limits.controllers())
        if os.path.isdir(where):
            os.rmdir(where)  # left empty by a service that ended: its limits may differ
        try:
            _mkdir(where)
            break
        except FileNotFoundError:  # a stop elsewhere removed vethwrap's emptied folder
            if not again:
                raise
    for name, value in limits.files().items():
        if os.path.exists(f"{where}/{name}"):
            _write(f"{where}/{name}", value)
        elif name not in OPTIONAL:
            os.rmdir(where)
            raise PreflightError(f"{where} has no {name}: the kernel did not give it the "
                                 "controller", f"see 'cat {hierarchy()}/cgroup.controllers'")
    return os.open(f"{where}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)


def joiner(procs_fd: int):
    """A pre-exec function: the new process moves itself into the cgroup before it execs."""
    def join() -> None:
        os.write(procs_fd, b"0")
    return join


def populated(folder: str) -> bool:
    """True while a process of the service is alive (False when the cgroup is gone)."""
    for line in _read(f"{path(folder)}/cgroup.events").splitlines():
        if line.startswith("populated "):
            return line.split()[1] == "1"
    return False


def members(folder: str) -> list[int]:
    """The processes in the service's cgroup now."""
    return [int(pid) for pid in _read(f"{path(folder)}/cgroup.procs").split()]


def kill(folder: str) -> None:
    """SIGKILL every process of the cgroup at once, those forking meanwhile included."""
    try:
        _write(f"{path(folder)}/cgroup.kill", "1")
        return
    except FileNotFoundError:
        if not os.path.isdir(path(folder)):
            return
    for pid in members(folder):  # a kernel before 5.14: one by one
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove(folder: str) -> bool:
    """Remove an emptied cgroup (and vethwrap's folder once it is empty); False if busy."""
    try:
        os.rmdir(path(folder))
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    try:
        os.rmdir(top())
    except OSError:  # other services still have theirs
        pass
    return True


def services() -> list[str]:
    """The folder names of every service cgroup, running or left empty."""
    try:
        entries = os.listdir(top())
    except OSError:
        return []
    return sorted(e for e in entries if parse_cgroup_name(e) and os.path.isdir(path(e)))


def limits_of(folder: str) -> Limits:
    """The limits the kernel holds for a service (none where a file says max or is absent)."""
    memory = _read(f"{path(folder)}/memory.max").strip()
    quota, _, period = _read(f"{path(folder)}/cpu.max").strip().partition(" ")
    cpus = int(quota) / int(period) if quota.isdigit() and period.isdigit() else None
    return Limits(int(memory) if memory.isdigit() else None, cpus)


def own_cgroup(pid: int) -> Optional[str]:
    """The cgroup v2 path of a process (/proc/PID/cgroup's 0:: line), None once it is gone."""
    for line in _read(f"/proc/{pid}/cgroup").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def _enable(where: str, wanted: list[str]) -> None:
    have = _read(f"{where}/cgroup.subtree_control").split()
    missing = [name for name in wanted if name not in have]
    if missing:
        _write(f"{where}/cgroup.subtree_control", " ".join(f"+{name}" for name in missing))


def _mkdir(where: str) -> None:
    try:
        os.mkdir(where, 0o755)
    except FileExistsError:
        pass


def _read(where: str) -> str:
    try:
        with open(where) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return ""


def _write(where: str, text: str) -> None:
    fd = os.open(where, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
