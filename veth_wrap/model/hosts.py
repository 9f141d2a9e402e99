"""Lab files over several hosts: the `hosts:` section, `vxlan_port:` and `remote_command:`.

Every namespace sits on exactly one host; a host has an underlay address (where the other hosts
reach it), its namespaces, and optionally how ssh reaches it. Problems are recorded on the lab
file's document, with its lines, like every other file error.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Optional, Sequence

from veth_wrap.model import names

KEYS = ("hosts", "vxlan_port", "remote_command")
HOST_KEYS = {"underlay", "namespaces", "ssh"}
DEFAULT_PORT = 14789  # 4789, the IANA port, is often taken by other overlays or filtered
# Characters a shell gives a meaning: a word holding one was written for a shell, and none reads it
SHELL_SYNTAX = frozenset("|&;<>()$`\\\"'*?[]#~{}!")


@dataclass(frozen=True)
class Host:
    """One host of a lab: its underlay address, its namespaces (prefixed), how ssh gets there."""

    name: str
    underlay: str
    namespaces: tuple[str, ...]
    ssh: str

    @property
    def version(self) -> int:
        """The IP version of the underlay."""
        return ipaddress.ip_address(self.underlay).version


@dataclass(frozen=True)
class Hosts:
    """Where a lab's namespaces live, and how the hosts' VXLAN devices talk."""

    hosts: tuple[Host, ...]
    port: int = DEFAULT_PORT
    remote_command: Optional[tuple[str, ...]] = None

    def get(self, name: str) -> Optional[Host]:
        """The host of that name, if the file has one."""
        return next((host for host in self.hosts if host.name == name), None)

    def of(self, netns: Optional[str]) -> Optional[Host]:
        """The host a namespace sits on."""
        return next((host for host in self.hosts if netns in host.namespaces), None)

    def names(self) -> list[str]:
        """The hosts' names, in file order."""
        return [host.name for host in self.hosts]


def of_lab(lab) -> Optional[Hosts]:
    """The lab's hosts, when its file has a hosts section."""
    return lab.extra.get("hosts")


def read(builder, data: dict) -> Optional[Hosts]:
    """The hosts section of a lab file (None without one); problems go to builder.doc."""
    value = data.get("hosts")
    if value is None:
        for key in ("vxlan_port", "remote_command"):
            if key in data:
                builder.doc.fail((key,), "only means something with hosts", "add hosts, or drop it")
        return None
    if not isinstance(value, dict) or not value:
        builder.doc.fail(("hosts",), "expected a mapping of host name: {underlay, namespaces}",
                         "e.g. hosts: {left: {underlay: 192.168.77.1, namespaces: [a]}}")
        return None
    found = [_host(builder, str(name), item) for name, item in value.items()]
    _each_once(builder, [host for host in found if host])
    hosts = tuple(host for host in found if host)
    _bridge_place(builder, hosts)
    return Hosts(hosts, _port(builder, data), _remote(builder, data))


def _bridge_place(builder, hosts: tuple[Host, ...]) -> None:
    """A bridge in the root namespace cannot stretch: each host's root is its own."""
    rooted = [link for link in builder.links if link.b.master and link.b.netns is None]
    spread = {host.name for host in hosts for link in rooted if link.a.netns in host.namespaces}
    if len(spread) > 1:
        builder.doc.fail(("bridges", 0, "where"), "a bridge whose members sit on several hosts "
                         "cannot be in the root namespace", "drop 'where: root'")


def _host(builder, name: str, item) -> Optional[Host]:
    where = ("hosts", name)
    doc = builder.doc
    if not isinstance(item, dict):
        doc.fail(where, "a host is a mapping with underlay and namespaces",
                 "e.g. {underlay: 192.168.77.1, namespaces: [a1]}")
        return None
    for key in sorted(set(item) - HOST_KEYS):
        doc.fail(where + (key,), "unknown key", f"expected {', '.join(sorted(HOST_KEYS))}")
    ok = builder._check(where, names.check_lab, name)
    underlay = _underlay(doc, item.get("underlay"), where + ("underlay",))
    spaces = []
    for i, ns in enumerate(builder._list(item.get("namespaces"), where + ("namespaces",),
                                         "namespace names")):
        if builder._member(ns, where + ("namespaces", i)):
            spaces.append(builder.ns[ns])
    ssh = item.get("ssh", underlay)
    if not isinstance(ssh, str) or not ssh or ssh.startswith("-") or any(c.isspace() for c in ssh):
        doc.fail(where + ("ssh",), f"{ssh!r} is not an ssh destination", "e.g. root@192.168.77.2")
        ok = False
    if not ok or underlay is None:
        return None
    return Host(name, underlay, tuple(spaces), ssh)


def _underlay(doc, value, where) -> Optional[str]:
    if value is None:
        doc.fail(where, "missing", "give the address the other hosts reach this one at")
        return None
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        doc.fail(where, f"{value!r} is not an IP address", "write it like 192.168.77.1, no prefix")
        return None
    if address.is_loopback or address.is_multicast or address.is_unspecified:
        doc.fail(where, f"{address} cannot be an underlay address",
                 "give the host's own unicast address on the network between the hosts")
        return None
    return str(address)


def _each_once(builder, hosts: list[Host]) -> None:
    """Every namespace on exactly one host, every underlay address on one host, one IP version."""
    doc = builder.doc
    placed: dict[str, str] = {}
    for host in hosts:
        for ns in host.namespaces:
            if ns in placed:
                doc.fail(("hosts", host.name, "namespaces"),
                         f"namespace {_plain(builder, ns)!r} is on hosts {placed[ns]} and "
                         f"{host.name}", "put it on one host")
            placed.setdefault(ns, host.name)
    for i, member in enumerate(builder.members):
        if builder.ns[member] not in placed:
            doc.fail(("namespaces", i), f"namespace {member!r} is on no host",
                     "list it under the namespaces of one host")
    seen: dict[str, str] = {}
    for host in hosts:
        if host.underlay in seen:
            doc.fail(("hosts", host.name, "underlay"), f"{host.underlay} is also the underlay "
                     f"of {seen[host.underlay]}", "give each host its own address")
        seen.setdefault(host.underlay, host.name)
    if len({host.version for host in hosts}) > 1:
        doc.fail(("hosts",), "the underlay addresses mix IPv4 and IPv6",
                 "give every host an address of one IP version")


def _plain(builder, netns: str) -> str:
    return netns[len(builder.prefix):]


def _port(builder, data: dict) -> int:
    value = data.get("vxlan_port", DEFAULT_PORT)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        builder.doc.fail(("vxlan_port",), f"{value!r} is not a UDP port", "e.g. vxlan_port: 14789")
        return DEFAULT_PORT
    return value


def _remote(builder, data: dict) -> Optional[tuple[str, ...]]:
    value = data.get("remote_command")
    if value is None:
        return None
    words = [value] if isinstance(value, str) else value
    problem = remote_problem(words)
    if problem:
        builder.doc.fail(("remote_command",), problem, "a program path, e.g. remote_command: "
                         "/opt/venv/bin/vethwrap, or a list of words: [sudo, -n, vethwrap]")
        return None
    return tuple(words)


def remote_problem(words: Sequence) -> Optional[str]:
    """Why these words cannot be the command that runs vethwrap on a host (None: they can).

    Words, not shell text: each is quoted when it crosses ssh, so shell syntax would be
    a literal character; a word holding any is refused rather than quietly meaning
    something else. The words must run vethwrap, as the program named last
    (`.../vethwrap`) or as `PYTHON -m veth_wrap`, since even a dry run starts them.
    """
    if not isinstance(words, (list, tuple)) or not words:
        return "expected a program path or a non-empty list of words"
    for word in words:
        if not isinstance(word, str) or not word:
            return f"{word!r} is not a word"
        bad = sorted({c for c in word if c in SHELL_SYNTAX or c.isspace() or not c.isprintable()})
        if bad:
            return (f"{word!r} holds shell syntax ({' '.join(map(repr, bad))}): "
                    "words are passed as they are, never to a shell")
    if os.path.basename(words[-1]) != "vethwrap" and list(words[-2:]) != ["-m", "veth_wrap"]:
        return (f"{' '.join(words)!r} does not run vethwrap: it must end in a program "
                "called vethwrap, or in -m veth_wrap")
    return None
