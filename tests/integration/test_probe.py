"""probe.py: raw ICMP echo from inside namespaces, on real namespaces, and its pure parts."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import time

import pytest
from conftest import ip

from veth_wrap.check import icmp
from veth_wrap.check import rawping as probe_mod
from veth_wrap.check.rawping import Probe, probe_all
from veth_wrap.errors import PreflightError, UsageError

NET = "10.77.0"
NET6 = "fd10:77::"
LAN = "10.78.0"


def pair(netns) -> tuple[str, str]:
    """Two namespaces joined by a veth pair: 10.77.0.1|2/24 and fd10:77::1|2/64."""
    a, b = netns.make("a"), netns.make("b")
    ip("link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
    for ns, dev, n in ((a, "va", 1), (b, "vb", 2)):
        ip("-n", ns, "addr", "add", f"{NET}.{n}/24", "dev", dev)
        ip("-n", ns, "addr", "add", f"{NET6}{n}/64", "dev", dev, "nodad")
        ip("-n", ns, "link", "set", dev, "up")
    return a, b


def bridge(netns, leaves: int) -> list[tuple[str, str]]:
    """Leaf namespaces on a bridge inside one more namespace; (namespace, address) each."""
    hub = netns.make("h")
    ip("-n", hub, "link", "add", "br0", "type", "bridge")
    ip("-n", hub, "link", "set", "br0", "up")
    hosts = []
    for i in range(1, leaves + 1):
        leaf, address = netns.make("l"), f"{LAN}.{i}"
        ip("link", "add", "eth0", "netns", leaf, "type", "veth",
           "peer", "name", f"p{i}", "netns", hub)
        ip("-n", hub, "link", "set", f"p{i}", "master", "br0", "up")
        ip("-n", leaf, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", leaf, "link", "set", "eth0", "up")
        hosts.append((leaf, address))
    return hosts


def matrix(hosts: list[tuple[str, str]]) -> list[Probe]:
    """Every host to every other host."""
    return [Probe(src, dst) for src, own in hosts for _, dst in hosts if dst != own]


def open_fds() -> list[str]:
    """This process's open file descriptors."""
    return sorted(os.listdir("/proc/self/fd"))


def my_netns() -> tuple[int, int]:
    """The network namespace this thread is in."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


@pytest.mark.integration
def test_pair_answers(unchanged, netns):
    a, b = pair(netns)
    results = probe_all([Probe(a, f"{NET}.2"), Probe(b, f"{NET}.1"), Probe(a, f"{NET}.2")])
    assert [r.replied for r in results] == [True, True, True]
    assert all(r.error is None and 0 < r.rtt_ms < 1000 for r in results)
    assert [r.probe for r in results] == [Probe(a, f"{NET}.2"), Probe(b, f"{NET}.1"),
                                          Probe(a, f"{NET}.2")]


@pytest.mark.integration
def test_silent_and_missing_addresses_time_out(unchanged, netns):
    a, b = pair(netns)
    ip("netns", "exec", b, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
    start = time.monotonic()
    silent, missing, answers = probe_all(
        [Probe(a, f"{NET}.2"), Probe(a, f"{NET}.99"), Probe(b, f"{NET}.1")], timeout=0.6)
    elapsed = time.monotonic() - start
    assert 0.5 < elapsed < 2
    for result in (silent, missing):
        assert not result.replied and result.rtt_ms is None
        assert result.error == "no reply to 3 echo requests in 0.6 s"
    assert answers.replied


@pytest.mark.integration
def test_no_route_fails_at_once(unchanged, netns):
    a, _ = pair(netns)
    start = time.monotonic()
    [result] = probe_all([Probe(a, "10.79.0.1")], timeout=5)
    assert time.monotonic() - start < 1
    assert (result.replied, result.error) == (False, "network is unreachable")


@pytest.mark.integration
def test_bridge_of_five_full_matrix(unchanged, netns):
    hosts = bridge(netns, 5)
    probes = matrix(hosts)
    assert len(probes) == 20
    results = probe_all(probes)
    assert [r.probe for r in results] == probes
    assert [r.probe for r in results if not r.replied] == []


@pytest.mark.integration
def test_sources_in_chunks(unchanged, netns, monkeypatch):
    monkeypatch.setattr(probe_mod, "CHUNK", 2)
    monkeypatch.setattr(probe_mod, "WINDOW", 3)
    hosts = bridge(netns, 5)
    results = probe_all(matrix(hosts) + [Probe(hosts[0][0], "10.79.0.1")])
    assert all(r.replied for r in results[:-1]) and not results[-1].replied


@pytest.mark.integration
def test_bridge_of_twenty_full_matrix_is_fast(unchanged, netns):
    probes = matrix(bridge(netns, 20))
    assert len(probes) == 380
    start = time.monotonic()
    first = probe_all(probes)
    cold = time.monotonic() - start
    start = time.monotonic()
    second = probe_all(probes)
    warm = time.monotonic() - start
    print(f"380 pairs: {cold * 1000:.0f} ms with ARP, {warm * 1000:.0f} ms warm")
    assert all(r.replied for r in first + second)
    assert cold < 3 and warm < 2


@pytest.mark.integration
def test_ipv6_pair(unchanged, netns):
    a, b = pair(netns)
    results = probe_all([Probe(a, f"{NET6}2"), Probe(b, "fd10:0077:0::1"),
                         Probe(a, f"{NET}.2"), Probe(a, f"{NET6}99")], timeout=0.6)
    assert [r.replied for r in results] == [True, True, True, False]
    assert results[3].error == "no reply to 3 echo requests in 0.6 s"


@pytest.mark.integration
def test_no_descriptor_leaks_and_thread_returns_home(unchanged, netns, monkeypatch):
    a, b = pair(netns)
    fds, home = open_fds(), my_netns()
    for _ in range(3):
        probe_all([Probe(a, f"{NET}.2"), Probe(a, f"{NET6}2"), Probe(b, "10.79.0.1")])
    with pytest.raises(UsageError):
        probe_all([Probe(a, f"{NET}.2"), Probe(netns.name("x"), f"{NET}.1")])
    monkeypatch.setattr(probe_mod.socket, "socket", _refusing_socket)
    with pytest.raises(PreflightError, match="raw ICMP socket"):
        probe_all([Probe(a, f"{NET}.2")])
    assert open_fds() == fds
    assert my_netns() == home


def _refusing_socket(*args, **kwargs):
    raise PermissionError(errno.EPERM, "Operation not permitted")


@pytest.mark.integration
def test_setns_refused_is_a_preflight_error(unchanged, netns, monkeypatch):
    a, _ = pair(netns)
    fds = open_fds()
    monkeypatch.delattr(os, "setns", raising=False)
    monkeypatch.setattr(probe_mod, "_libc", _RefusingLibc())
    with pytest.raises(PreflightError, match="cannot enter network namespace") as caught:
        probe_all([Probe(a, f"{NET}.2")])
    assert "CAP_SYS_ADMIN" in caught.value.hint
    assert open_fds() == fds


class _RefusingLibc:
    """Stands in for libc: setns fails with EPERM, as for an unprivileged user."""

    def setns(self, fd, nstype):
        """Fail like the real call without CAP_SYS_ADMIN."""
        ctypes.set_errno(errno.EPERM)
        return -1


@pytest.mark.integration
def test_refuses_a_name_for_the_root_namespace(unchanged, netns):
    a, _ = pair(netns)
    name = netns.name("r")
    ip("netns", "attach", name, str(os.getpid()))  # a name for our own namespace, not a new one
    with pytest.raises(UsageError, match="is the root namespace"):
        probe_all([Probe(a, f"{NET}.2"), Probe(name, f"{NET}.2")])


@pytest.mark.parametrize("source,needle", [
    ("vt-surely-absent-ns", "does not exist"),
    ("-bad", "namespace name"),
    ("../etc", "namespace name"),
])
def test_refuses_bad_source_before_sending(source, needle):
    with pytest.raises(UsageError, match=needle):
        probe_all([Probe(source, "10.0.0.1")])


@pytest.mark.parametrize("destination,needle", [
    ("host.example", "not an IP address"),
    ("-f", "not an IP address"),
    ("fe80::1%eth0", "link-local"),
])
def test_refuses_bad_destination_before_sending(destination, needle, tmp_path, monkeypatch):
    (tmp_path / "lab").touch()  # a source that passes the check, so the destination is judged
    monkeypatch.setattr(probe_mod, "NETNS_DIR", str(tmp_path))
    with pytest.raises(UsageError, match=needle):
        probe_all([Probe("lab", destination)])


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"attempts": 0}])
def test_refuses_bad_limits(kwargs):
    with pytest.raises(UsageError):
        probe_all([], **kwargs)


def test_empty_list():
    assert probe_all([]) == []


def test_checksum_of_echo_request_verifies():
    packet = icmp.echo_request(socket.AF_INET, 0x1234, 7, b"T" * 8)
    assert icmp._checksum(packet) == 0
    assert struct.unpack_from("!BBxxHH", packet) == (8, 0, 0x1234, 7)


def test_parses_ipv4_reply_with_options_in_header():
    token = b"tok12345"
    request = icmp.echo_request(socket.AF_INET, 99, 3, token)
    reply = bytes([0]) + request[1:]
    header = bytes([0x46]) + bytes(11) + bytes([10, 77, 0, 2]) + bytes(4) + bytes(4)  # IHL 6
    match = icmp.parse(socket.AF_INET, header + reply, ("10.77.0.2", 0), token)
    assert match.key == (bytes([10, 77, 0, 2]), 99, 3) and match.error is None
    assert 0 <= match.rtt_ms < 1000
    assert icmp.parse(socket.AF_INET, header + reply, ("10.77.0.2", 0), b"other!!!") is None


def test_parses_ipv6_address_unreachable():
    request = icmp.echo_request(socket.AF_INET6, 5, 6, b"tok12345")
    inner = bytes(24) + socket.inet_pton(socket.AF_INET6, "fd10:77::99") + request
    message = struct.pack("!BBHI", 1, 3, 0, 0) + inner
    match = icmp.parse(socket.AF_INET6, message, ("fd10:77::1", 0, 0, 0), b"tok12345")
    assert match.key == (socket.inet_pton(socket.AF_INET6, "fd10:77::99"), 5, 6)
    assert (match.rtt_ms, match.error) == (None, "address unreachable")


def test_parses_ipv4_host_unreachable():
    request = icmp.echo_request(socket.AF_INET, 5, 6, b"tok12345")
    inner = bytes([0x45]) + bytes(15) + bytes([10, 77, 0, 99]) + request[:8]
    message = struct.pack("!BBHI", 3, 1, 0, 0) + inner
    header = bytes([0x45]) + bytes(19)
    match = icmp.parse(socket.AF_INET, header + message, ("10.77.0.1", 0), b"tok12345")
    assert match.key == (bytes([10, 77, 0, 99]), 5, 6)
    assert (match.rtt_ms, match.error) == (None, "host unreachable")


def test_icmp6_filter_passes_only_reply_and_unreachable():
    words = struct.unpack("=8I", icmp.icmp6_filter())
    passing = [kind for kind in range(256) if not words[kind >> 5] & (1 << (kind & 31))]
    assert passing == [1, 129]


def test_failures_blamed_on_a_full_neighbour_table(monkeypatch):
    monkeypatch.setattr(probe_mod, "_table_fulls", lambda: {socket.AF_INET: 5,
                                                            socket.AF_INET6: 0})
    v4 = probe_mod._Target("lab", socket.AF_INET, bytes(4), ("10.0.0.1", 0), error="no reply")
    ok = probe_mod._Target("lab", socket.AF_INET, bytes(4), ("10.0.0.2", 0), rtt_ms=0.1)
    v6 = probe_mod._Target("lab", socket.AF_INET6, bytes(16), ("fd00::1", 0, 0, 0),
                           error="no reply")
    probe_mod._blame_full_neighbour_tables({"lab": [v4, ok, v6]},
                                           {socket.AF_INET: 2, socket.AF_INET6: 0})
    assert v4.error == ("no reply; the kernel's neighbour table overflowed "
                        "(raise net.ipv4.neigh.default.gc_thresh3)")
    assert (ok.error, v6.error) == (None, "no reply")


def test_reads_table_fulls_from_proc():
    counts = probe_mod._table_fulls()
    assert set(counts) == {socket.AF_INET, socket.AF_INET6}
    assert all(isinstance(n, int) and n >= 0 for n in counts.values())
