"""ICMP and ICMPv6 echo messages as bytes: building requests, matching replies and errors."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

V4, V6 = socket.AF_INET, socket.AF_INET6
ECHO = {V4: (8, 0), V6: (128, 129)}  # (request, reply) types
UNREACH = {V4: 3, V6: 1}
UNREACH_TEXT = {
    V4: {0: "network unreachable", 1: "host unreachable", 3: "port unreachable",
         9: "network administratively prohibited", 10: "host administratively prohibited",
         13: "communication administratively prohibited"},
    V6: {0: "no route to destination", 1: "communication administratively prohibited",
         3: "address unreachable", 4: "port unreachable"},
}


def icmp6_filter() -> bytes:
    """struct icmp6_filter blocking every type but echo reply and destination unreachable."""
    words = [0xFFFFFFFF] * 8  # a set bit blocks that type
    for kind in (ECHO[V6][1], UNREACH[V6]):
        words[kind >> 5] &= ~(1 << (kind & 31))
    return struct.pack("=8I", *words)


def echo_request(family: int, ident: int, seq: int, token: bytes) -> bytes:
    """An echo request carrying our token and its send time, for the round trip."""
    payload = token + struct.pack("!Q", time.monotonic_ns())
    kind = ECHO[family][0]
    if family == V6:  # the kernel computes ICMPv6 checksums on raw sockets
        return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
    checksum = _checksum(struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload)
    return struct.pack("!BBHHH", kind, 0, checksum, ident, seq) + payload


def _checksum(data: bytes) -> int:
    """The internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


@dataclass(frozen=True)
class _Match:
    """What a received ICMP message says about the request with this key."""

    key: tuple[bytes, int, int]  # (destination address, identifier, sequence)
    rtt_ms: float | None
    error: str | None


def parse(family: int, data: bytes, addr: tuple, token: bytes) -> _Match | None:
    """Key (address, id, seq), rtt and error of an echo reply or unreachable, else None."""
    if family == V4:
        if len(data) < 20:
            return None
        ihl = (data[0] & 0x0F) * 4  # IPv4 raw sockets receive the IP header too
        return _parse_icmp(V4, data[12:16], data[ihl:], token)
    source = socket.inet_pton(V6, addr[0].split("%")[0])
    return _parse_icmp(V6, source, data, token)


def _parse_icmp(family: int, source: bytes, icmp: bytes, token: bytes) -> _Match | None:
    if len(icmp) < 8:
        return None
    kind, code, _, ident, seq = struct.unpack_from("!BBHHH", icmp)
    if kind == ECHO[family][1]:
        payload = icmp[8:]
        if len(payload) < 16 or payload[:8] != token:
            return None
        sent = struct.unpack_from("!Q", payload, 8)[0]
        return _Match((source, ident, seq), max(time.monotonic_ns() - sent, 0) / 1e6, None)
    if kind == UNREACH[family]:
        return _unreachable(family, code, icmp[8:])
    return None


def _unreachable(family: int, code: int, inner: bytes) -> _Match | None:
    """Match a destination unreachable by the echo request it quotes."""
    if family == V4:
        ihl = (inner[0] & 0x0F) * 4 if inner else 0
        destination, echo = inner[16:20], inner[ihl:ihl + 8]
    else:
        destination, echo = inner[24:40], inner[40:48]
    if len(echo) < 8 or echo[0] != ECHO[family][0]:
        return None
    ident, seq = struct.unpack_from("!HH", echo, 4)
    text = UNREACH_TEXT[family].get(code, f"destination unreachable (code {code})")
    return _Match((destination, ident, seq), None, text)
