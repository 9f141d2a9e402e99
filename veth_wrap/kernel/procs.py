"""Processes found from the kernel: which network namespace each runs in, and what listens."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable, Optional

from veth_wrap.model.names import Mark, Role
from veth_wrap.model.procfacts import ENV_LAB, ENV_NETNS, ENV_SERVICE, UPLINK_SERVICE, Proc
from veth_wrap.model.servicespec import WaitPort, cgroup_name, service_of
from veth_wrap.run import cgroups
from veth_wrap.run.runner import NETNS_RUN, Runner, default_runner, in_parts

TCP_LISTEN = "0A"  # st in /proc/net/tcp: TCP_LISTEN
UDP_UNCONNECTED = "07"  # st in /proc/net/udp of a bound, unconnected socket (TCP_CLOSE)


def netns_inode(name: str) -> Optional[int]:
    """The inode of a named namespace (what /proc/PID/ns/net points at), None if absent."""
    try:
        return os.stat(f"{NETNS_RUN}/{name}").st_ino
    except OSError:
        return None


def inodes(names: Iterable[str]) -> dict[int, str]:
    """inode -> name for the named namespaces that exist."""
    found = {}
    for name in names:
        inode = netns_inode(name)
        if inode is not None:
            found[inode] = name
    return found


def named_inodes() -> set[int]:
    """The inodes of every namespace under /run/netns (read without a process)."""
    try:
        return set(inodes(os.listdir(NETNS_RUN)))
    except OSError:
        return set()


def _inode_of(pid: int) -> Optional[int]:
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")  # "net:[4026531840]"
    except OSError:  # gone, a zombie, or a kernel thread
        return None
    return int(link[5:-1]) if link.startswith("net:[") else None


def pids() -> list[int]:
    """Every process id in /proc."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def namespaces_in_use() -> dict[int, list[int]]:
    """Network namespace inode -> the processes in it, for every process."""
    found: dict[int, list[int]] = {}
    for pid in pids():
        inode = _inode_of(pid)
        if inode is not None:
            found.setdefault(inode, []).append(pid)
    return found


def scan(wanted: dict[int, str]) -> list[Proc]:
    """The processes whose network namespace is one of `wanted` (inode -> name or label)."""
    me: Optional[set[int]] = None  # read only once a process matches: most scans find none
    found = []
    for pid in pids():
        inode = _inode_of(pid)
        if inode not in wanted:
            continue
        me = _ancestors(os.getpid()) if me is None else me
        if pid not in me:
            proc = describe(pid, inode, wanted[inode])
            if proc is not None:
                found.append(proc)
    return found


def gateways(namespaces: Optional[Iterable[str]] = None, labs: Iterable[str] = ()
             ) -> list[Proc]:
    """The uplink gateways (pasta, in the host's namespace) serving namespaces or labs.

    They are found by the identity vethwrap started them with (VETHWRAP_SERVICE=uplink and
    the namespace and lab, in their environment); None for namespaces: every one.
    """
    names = None if namespaces is None else set(namespaces)
    labs = set(labs)
    found = []
    for pid in pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(_pairs(f.read()))
        except OSError:
            continue
        if env.get(ENV_SERVICE) != UPLINK_SERVICE:
            continue
        if names is None or env.get(ENV_NETNS) in names or env.get(ENV_LAB) in labs:
            proc = describe(pid, _inode_of(pid) or 0, env.get(ENV_NETNS))
            # a gateway has no cgroup of its own: its environment names it
            found += [dataclasses.replace(proc, service=UPLINK_SERVICE,
                                          lab=env.get(ENV_LAB))] if proc else []
    return found


def describe(pid: int, inode: int, netns: Optional[str]) -> Optional[Proc]:
    """A process's command line, service (its cgroup says which) and times; None once gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = tuple(w.decode(errors="replace") for w in f.read().split(b"\0") if w)
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if not argv:
        argv = (_comm(pid),)
    ticks = os.sysconf("SC_CLK_TCK")
    owner = service_of(cgroups.own_cgroup(pid) or "")
    lab, service = (owner[0], owner[2]) if owner else (None, None)
    return Proc(pid, inode, argv, service, lab, int(fields[3]), int(fields[1]),
                int(fields[19]) / ticks, netns, cgroup_name(*owner) if owner else None)


def describe_any(pid: int) -> Optional[Proc]:
    """describe() for a process wherever it runs (its namespace named when it has a name)."""
    inode = _inode_of(pid)
    if inode is None:
        return None
    return describe(pid, inode, inodes_to_names().get(inode))


def inodes_to_names() -> dict[int, str]:
    """inode -> name for every namespace under /run/netns."""
    try:
        return inodes(os.listdir(NETNS_RUN))
    except OSError:
        return {}


def _pairs(blob: bytes) -> Iterable[tuple[str, str]]:
    for item in blob.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key in (ENV_SERVICE.encode(), ENV_LAB.encode(), ENV_NETNS.encode()):
            yield key.decode(), value.decode(errors="replace")


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f"[{f.read().strip()}]"
    except OSError:
        return "?"


def _ancestors(pid: int) -> set[int]:
    """This process and its parents: never signalled, wherever they run."""
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return found


def uptime() -> float:
    """Seconds since boot."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def parse_sockets(text: str, state: str) -> dict[int, int]:
    """socket inode -> local port of the rows in one state of a /proc/net/{tcp,udp}{,6} table."""
    found = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == state:
            found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets a process holds open (none once it is gone)."""
    found = set()
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for entry in entries:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def own_ports(pids: Iterable[int], proto: str) -> set[int]:
    """The ports on which these processes themselves listen (TCP) or are bound (UDP).

    A socket counts only when one of the processes holds its inode: a port someone else
    holds in the same namespace is not theirs.
    """
    held: set[int] = set()
    reader = None
    for pid in pids:
        mine = socket_inodes(pid)
        if mine:
            held |= mine
            reader = reader or pid
    if reader is None:
        return set()
    state = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    ports = set()
    for table in (proto, f"{proto}6"):
        try:
            with open(f"/proc/{reader}/net/{table}") as f:
                rows = parse_sockets(f.read(), state)
        except OSError:
            continue
        ports |= {port for inode, port in rows.items() if inode in held}
    return ports


def listens(pids: Iterable[int], wanted: WaitPort) -> bool:
    """True when the processes hold a socket on the wanted port and protocol."""
    return wanted.port in own_ports(pids, wanted.proto)


def orphans(named: Iterable[int], runner: Optional[Runner] = None) -> dict[int, tuple[Mark, int]]:
    """Unnamed network namespaces that vethwrap created: inode -> (lo's mark, a pid inside).

    A namespace whose name was deleted lives on while a process holds it; lo's mark, read
    from inside with nsenter, tells whether it was vethwrap's.
    """
    skip = set(named) | {_inode_of(1), _inode_of(os.getpid())}
    held = {inode: members[0] for inode, members in namespaces_in_use().items()
            if inode not in skip}
    if not held:
        return {}
    runner = runner or default_runner()
    found: dict[int, tuple[Mark, int]] = {}

    def check(part: list) -> list:
        return [(inode, pid, _lo_mark(pid, runner)) for inode, pid in part]

    for part in in_parts(sorted(held.items()), check):
        for inode, pid, mark in part:
            if mark and mark.role in (Role.NETNS, Role.HUB):
                found[inode] = (mark, pid)
    return found


def _lo_mark(pid: int, runner: Runner) -> Optional[Mark]:
    result = runner.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "link", "show",
                         "lo"], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    items = json.loads(result.stdout)
    return Mark.parse(items[0].get("ifalias")) if items else None
