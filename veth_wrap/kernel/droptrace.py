"""The kernel's own drop reasons: the `skb:kfree_skb` tracepoint, watched while a probe runs.

The event is enabled in a trace instance of our own (`instances/vethwrap-PID`), so the main
buffer and every event someone else enabled stay as they were; the instance is removed
afterwards, and tracefs unmounted only when we mounted it. Nothing here is required: without
tracefs (or its permission) the watch reads nothing.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from veth_wrap.run.runner import Runner

TRACEFS = "/sys/kernel/tracing"
LOCK = "droptrace.lock"  # in run/lock.LOCK_DIR, beside the lock of every change
EVENT = "events/skb/kfree_skb"
PROTOCOLS = {4: (0x0800, 0x0806), 6: (0x86DD,)}  # IPv4 and ARP; IPv6 (neighbour discovery in it)
# reasons a busy host gives all the time, that say nothing about a path
_NOISE = {"NOT_SPECIFIED", "NO_SOCKET", "SOCKET_CLOSE", "SOCKET_FILTER", "SOCKET_RCVBUFF",
          "UNIX_DISCONNECT", "QUEUE_PURGE"}
_LINE = re.compile(r"protocol=(?P<proto>\d+)\s+location=(?P<loc>\S+)\s+reason:\s+(?P<why>\w+)")


@dataclass(frozen=True)
class Drop:
    """How many packets the kernel freed for one reason at one place."""

    reason: str
    function: str
    protocol: int
    count: int

    def text(self) -> str:
        """As evidence names it."""
        return f"{self.reason} in {self.function} ({self.count} packet" \
               f"{'s' if self.count > 1 else ''})"


def parse(text: str, protocols: tuple[int, ...] = ()) -> list[Drop]:
    """The drops in a trace buffer's text, most frequent first; noise and other protocols out."""
    seen: Counter = Counter()
    for row in text.splitlines():
        match = _LINE.search(row)
        if not match or match["why"] in _NOISE:
            continue
        proto = int(match["proto"])
        if protocols and proto not in protocols:
            continue
        seen[(match["why"], match["loc"].split("+")[0], proto)] += 1
    return [Drop(why, where, proto, n) for (why, where, proto), n in seen.most_common()]


@dataclass
class Watch:
    """What a watch saw (filled when it ends), and why it saw nothing, if so."""

    drops: list[Drop]
    note: str = ""


@contextmanager
def watching(runner: Runner, family: int) -> Iterator[Watch]:
    """Record kfree_skb of the family's protocols while the block runs."""
    watch = Watch([])
    lock = _exclusive()
    if lock is None:  # another diagnosis watches (and may unmount what it mounted)
        watch.note = "another vethwrap is watching drop reasons: none read this time"
        yield watch
        return
    try:
        with _watched(runner, family, watch):
            yield watch
    finally:
        os.close(lock)


def _exclusive() -> int | None:
    """A lock that one watcher at a time holds (never waited for)."""
    import fcntl

    from veth_wrap.errors import PreflightError
    from veth_wrap.run.lock import LOCK_DIR, open_dir

    try:
        home = open_dir(LOCK_DIR)
    except (OSError, PreflightError):
        return None
    try:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=home)
    except OSError:
        return None
    finally:
        os.close(home)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


@contextmanager
def _watched(runner: Runner, family: int, watch: Watch) -> Iterator[Watch]:
    mounted_here = False
    if not os.path.isdir(os.path.join(TRACEFS, "instances")):
        done = runner.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=False)
        mounted_here = done.returncode == 0
        if not mounted_here:
            watch.note = "tracefs could not be mounted: no drop reasons read"
            yield watch
            return
    instance = os.path.join(TRACEFS, "instances", f"vethwrap-{os.getpid()}")
    try:
        os.mkdir(instance)
    except OSError as exc:
        watch.note = f"no trace instance ({exc.strerror}): no drop reasons read"
        instance = ""
    try:
        if instance and _start(instance, family, watch):
            yield watch
            watch.drops = parse(_read(os.path.join(instance, "trace")), PROTOCOLS[family])
        else:
            yield watch
    finally:
        if instance:
            _write(os.path.join(instance, EVENT, "enable"), "0")
            _rmdir(instance)
        if mounted_here:
            runner.run(["umount", TRACEFS], check=False)


def _start(instance: str, family: int, watch: Watch) -> bool:
    wanted = " || ".join(f"protocol == {p}" for p in PROTOCOLS[family])
    if not (_write(os.path.join(instance, EVENT, "filter"), wanted)
            and _write(os.path.join(instance, EVENT, "enable"), "1")):
        watch.note = "the skb:kfree_skb event cannot be enabled: no drop reasons read"
        return False
    return True


def _write(path: str, text: str) -> bool:
    try:
        with open(path, "w") as handle:
            handle.write(text)
        return True
    except OSError:
        return False


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # busy for a moment after the event is disabled: the kernel frees it on umount
