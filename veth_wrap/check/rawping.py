"""ICMP echo sent from inside many namespaces at once, with raw sockets made after setns(2).

A socket keeps the network namespace it was created in, so this process enters each source
namespace just long enough to open its sockets, goes back, and then runs every probe from one
poll loop: thousands of pairs in well under a second, where a ping process per pair takes
minutes.
"""

from __future__ import annotations

import ctypes
import errno
import heapq
import ipaddress
import itertools
import os
import random
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from veth_wrap.check.icmp import ECHO, UNREACH, V4, V6, echo_request, icmp6_filter, parse
from veth_wrap.errors import NoSuchNamespace, PreflightError, UsageError
from veth_wrap.model.names import check_netns

NETNS_DIR = "/run/netns"
HOME_NETNS = "/proc/thread-self/ns/net"  # setns(2) moves only the calling thread
INIT_NETNS = "/proc/1/ns/net"
CLONE_NEWNET = 0x40000000
CHUNK = 256  # source namespaces whose sockets are open at once: at most 512 descriptors
WINDOW = 4096  # first requests in flight at once, so no queue on the way overflows
RCVBUF = 4 << 20  # a source may get hundreds of replies between two reads
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
NEIGH_STATS = {V4: ("/proc/net/stat/arp_cache", "net.ipv4.neigh.default.gc_thresh3"),
               V6: ("/proc/net/stat/ndisc_cache", "net.ipv6.neigh.default.gc_thresh3")}
TRANSIENT = {errno.EAGAIN, errno.ENOBUFS, errno.EINTR}  # counts as a lost request


@dataclass(frozen=True)
class Probe:
    """An ICMP echo request to send from inside a namespace to an address."""

    source: str
    destination: str


@dataclass(frozen=True)
class ProbeResult:
    """Whether a probe was answered, how fast, and otherwise why not."""

    probe: Probe
    replied: bool
    rtt_ms: float | None
    error: str | None


@dataclass(eq=False)
class _Target:
    """One distinct (source, destination) pair and what happened to it."""

    source: str
    family: int
    packed: bytes
    sockaddr: tuple
    ident: int = 0
    seq: int = 0
    sent: int = 0
    done: bool = False
    rtt_ms: float | None = None
    error: str | None = None


def probe_all(probes: Sequence[Probe], timeout: float = 1.0,
              attempts: int = 3) -> list[ProbeResult]:
    """Probe every pair; each gets `attempts` requests spread over `timeout` seconds."""
    _check_limits(timeout, attempts)
    keys, targets = _plan(probes)
    by_source: dict[str, list[_Target]] = {}
    for target in targets.values():
        by_source.setdefault(target.source, []).append(target)
    sources = list(by_source)
    token = os.urandom(8)  # marks our replies apart from other pingers in the namespace
    for start in range(0, len(sources), CHUNK):
        chunk = {name: by_source[name] for name in sources[start:start + CHUNK]}
        _Session(token, timeout, attempts).run(chunk)
    return [_result(probe, targets[key]) for probe, key in zip(probes, keys)]


def _result(probe: Probe, target: _Target) -> ProbeResult:
    return ProbeResult(probe, target.rtt_ms is not None, target.rtt_ms, target.error)


def _check_limits(timeout: float, attempts: int) -> None:
    if timeout <= 0:
        raise UsageError(f"probe timeout {timeout:g} s is not positive", "give a timeout above 0")
    if attempts < 1:
        raise UsageError(f"probe attempts {attempts} is below 1", "send at least one request")


def _plan(probes: Sequence[Probe]) -> tuple[list[tuple[str, bytes]], dict]:
    """Validate every probe before anything is sent; merge duplicate pairs."""
    keys: list[tuple[str, bytes]] = []
    targets: dict[tuple[str, bytes], _Target] = {}
    checked: set[str] = set()
    forbidden = _forbidden_namespaces() if probes else set()
    for probe in probes:
        if probe.source not in checked:
            _check_source(probe.source, forbidden)
            checked.add(probe.source)
        family, packed, sockaddr = _destination(probe.destination)
        key = (probe.source, packed)
        if key not in targets:
            targets[key] = _Target(probe.source, family, packed, sockaddr)
        keys.append(key)
    return keys, targets


def _check_source(name: str, forbidden: set[tuple[int, int]]) -> None:
    check_netns(name)
    try:
        st = os.stat(os.path.join(NETNS_DIR, name))
    except OSError:
        raise NoSuchNamespace(name) from None
    _refuse_root(name, st, forbidden)


def _refuse_root(name: str, st: os.stat_result, forbidden: set[tuple[int, int]]) -> None:
    if (st.st_dev, st.st_ino) in forbidden:
        raise UsageError(f"network namespace {name!r} is the root namespace",
                         "probes are never sent from the root namespace")


def _destination(text: str) -> tuple[int, bytes, tuple]:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"probe destination {text!r} is not an IP address",
                         "give an IPv4 or IPv6 address such as 10.0.0.2") from None
    if address.version == 4:
        return V4, address.packed, (str(address), 0)
    if address.scope_id or address.is_link_local:
        raise UsageError(f"probe destination {text!r} is link-local",
                         "give a global or unique-local address such as fd00::2")
    return V6, address.packed, (str(address), 0, 0, 0)


class _Session:
    """One chunk of source namespaces: their sockets, the requests in flight, the replies."""

    def __init__(self, token: bytes, timeout: float, attempts: int) -> None:
        self.token = token
        self.timeout = timeout
        self.interval = timeout / attempts
        self.attempts = attempts
        self.poller = select.poll()
        self.sockets: dict[int, tuple[socket.socket, dict]] = {}
        self.fresh: deque[tuple[socket.socket, _Target]] = deque()
        self.heap: list[tuple[float, int, socket.socket, _Target]] = []
        self.order = itertools.count()  # breaks ties in the heap
        self.remaining = 0
        self.in_flight = 0

    def run(self, by_source: dict[str, list[_Target]]) -> None:
        """Open the chunk's sockets, probe until every target is settled, close them."""
        before = _table_fulls()
        with ExitStack() as stack:
            self._open(by_source, stack)
            self._loop()
        _blame_full_neighbour_tables(by_source, before)

    def _open(self, by_source: dict[str, list[_Target]], stack: ExitStack) -> None:
        home = os.open(HOME_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        stack.callback(os.close, home)
        forbidden = _forbidden_namespaces()
        for source, targets in by_source.items():
            families = sorted({target.family for target in targets})
            sockets = _open_sockets(source, families, home, forbidden, stack)
            for family, sock in sockets.items():
                self._add(sock, [target for target in targets if target.family == family])

    def _add(self, sock: socket.socket, targets: list[_Target]) -> None:
        base = random.getrandbits(16)  # an identifier per socket, as ping has one per process
        table = {}
        for index, target in enumerate(targets):
            target.ident = (base + (index >> 16)) & 0xFFFF
            target.seq = index & 0xFFFF
            table[(target.packed, target.ident, target.seq)] = target
            self.fresh.append((sock, target))
        self.sockets[sock.fileno()] = (sock, table)
        self.poller.register(sock.fileno(), select.POLLIN)
        self.remaining += len(targets)

    def _loop(self) -> None:
        while self.remaining:
            now = time.monotonic()
            self._resend_or_expire(now)
            while self.fresh and self.in_flight < WINDOW:
                self._send(*self.fresh.popleft(), now)
            if not self.remaining:
                return
            for fd, _ in self.poller.poll(self._wait_ms()):
                self._drain(fd)

    def _resend_or_expire(self, now: float) -> None:
        while self.heap and self.heap[0][0] <= now:
            _, _, sock, target = heapq.heappop(self.heap)
            if target.done:
                continue
            if target.sent < self.attempts:
                self._send(sock, target, now)
            else:
                self._finish(target, error=f"no reply to {target.sent} echo requests "
                                           f"in {self.timeout:g} s")

    def _wait_ms(self) -> int:
        while self.heap and self.heap[0][3].done:
            heapq.heappop(self.heap)
        if not self.heap:
            return 0
        return max(0, int((self.heap[0][0] - time.monotonic()) * 1000) + 1)

    def _send(self, sock: socket.socket, target: _Target, now: float) -> None:
        target.sent += 1
        if target.sent == 1:
            self.in_flight += 1
        packet = echo_request(sock.family, target.ident, target.seq, self.token)
        try:
            sock.sendto(packet, target.sockaddr)
        except OSError as exc:
            if exc.errno not in TRANSIENT:  # e.g. no route: another try cannot help
                self._finish(target, error=(exc.strerror or str(exc)).lower())
                return
        heapq.heappush(self.heap, (now + self.interval, next(self.order), sock, target))

    def _drain(self, fd: int) -> None:
        sock, table = self.sockets[fd]
        while True:
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:  # EAGAIN: read everything there was
                return
            match = parse(sock.family, data, addr, self.token)
            target = table.get(match.key) if match else None
            if target is not None and not target.done:
                self._finish(target, rtt_ms=match.rtt_ms, error=match.error)

    def _finish(self, target: _Target, rtt_ms: float | None = None,
                error: str | None = None) -> None:
        target.done, target.rtt_ms, target.error = True, rtt_ms, error
        self.remaining -= 1
        if target.sent:
            self.in_flight -= 1


def _table_fulls() -> dict[int, int]:
    """How often each neighbour table was full: the table and its limit are host-wide."""
    counts = {}
    for family, (path, _) in NEIGH_STATS.items():
        try:
            with open(path) as stats:
                rows = [line.split() for line in stats]
        except OSError:
            rows = []
        column = rows[0].index("table_fulls") if rows and "table_fulls" in rows[0] else None
        counts[family] = sum(int(row[column], 16) for row in rows[1:]) if column is not None else 0
    return counts


def _blame_full_neighbour_tables(by_source: dict[str, list[_Target]],
                                 before: dict[int, int]) -> None:
    """Say why probes failed when the kernel refused neighbour entries meanwhile."""
    failed = [target for targets in by_source.values() for target in targets
              if target.rtt_ms is None]
    after = _table_fulls() if failed else {}  # all answered: nothing to explain
    for target in failed:
        if after[target.family] > before[target.family]:
            setting = NEIGH_STATS[target.family][1]
            target.error = (f"{target.error}; the kernel's neighbour table overflowed "
                            f"(raise {setting})")


def _forbidden_namespaces() -> set[tuple[int, int]]:
    """Our own namespace and init's: a name in /run/netns may point at either."""
    stats = [os.stat(HOME_NETNS)]
    try:
        stats.append(os.stat(INIT_NETNS))
    except OSError:
        pass  # /proc/1 hidden: our own namespace is still refused
    return {(st.st_dev, st.st_ino) for st in stats}


def _open_sockets(source: str, families: list[int], home: int,
                  forbidden: set[tuple[int, int]], stack: ExitStack) -> dict[int, socket.socket]:
    """Raw ICMP sockets made inside a namespace; they stay in it after we return home."""
    fd = _open_netns(source)
    try:
        _refuse_root(source, os.fstat(fd), forbidden)  # the name may have been re-pointed
        _setns(fd, f"network namespace {source!r}")
        try:
            return {family: _icmp_socket(family, stack) for family in families}
        finally:
            _setns(home, "the original network namespace")  # never stay in a lab namespace
    finally:
        os.close(fd)


def _open_netns(source: str) -> int:
    try:
        return os.open(os.path.join(NETNS_DIR, source), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"network namespace {source!r} disappeared",
                         "see 'ip netns list'") from None
    except PermissionError as exc:
        raise PreflightError(f"cannot open network namespace {source!r}: {exc.strerror}",
                             "run as root") from None


_libc: ctypes.CDLL | None = None


def _setns(fd: int, what: str) -> None:
    """Move this thread into the network namespace behind fd."""
    global _libc
    try:
        if hasattr(os, "setns"):  # Python 3.12+
            os.setns(fd, CLONE_NEWNET)
            return
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)  # libc is already loaded into python
        if _libc.setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNET)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    except OSError as exc:
        hint = "see 'ip netns list'"
        if exc.errno == errno.EPERM:
            hint = "run as root: entering a namespace needs CAP_SYS_ADMIN"
        raise PreflightError(f"cannot enter {what}: {exc.strerror}", hint) from None


def _icmp_socket(family: int, stack: ExitStack) -> socket.socket:
    """A non-blocking raw socket that receives only echo replies and unreachables."""
    proto = socket.IPPROTO_ICMP if family == V4 else socket.IPPROTO_ICMPV6
    try:
        sock = stack.enter_context(socket.socket(family, socket.SOCK_RAW, proto))
    except PermissionError:
        raise PreflightError("cannot open a raw ICMP socket: Operation not permitted",
                             "run as root: raw sockets need CAP_NET_RAW") from None
    sock.setblocking(False)
    if family == V4:
        allowed = (1 << ECHO[V4][1]) | (1 << UNREACH[V4])
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~allowed & 0xFFFFFFFF))
    else:
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp6_filter())
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    return sock
