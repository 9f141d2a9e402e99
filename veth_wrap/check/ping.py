"""The system ping (iputils-ping) run inside a namespace, and its statistics parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from veth_wrap.errors import CommandFailed, NoSuchNamespace, UsageError
from veth_wrap.model.destination import Address
from veth_wrap.model.names import check_netns
from veth_wrap.run.runner import Result, Runner, default_runner, require

MIN_INTERVAL = 0.2  # iputils refuses shorter intervals to non-root users

# iputils ping_common.c finish(): duplicates, corrupted and errors appear only when non-zero,
# and loss and time only when something was sent.
_SUMMARY = re.compile(
    r"^(?P<tx>\d+) packets transmitted, (?P<rx>\d+) (?:packets )?received"
    r"(?:, \+(?P<dup>\d+) duplicates)?(?:, \+(?P<bad>\d+) corrupted)?"
    r"(?:, \+(?P<err>\d+) errors)?"
    r"(?:, (?P<loss>[\d.]+)% packet loss)?(?:, time (?P<time>\d+)ms)?",
    re.MULTILINE,
)
_RTT = re.compile(
    r"^(?:rtt|round-trip) min/avg/max/(?:mdev|stddev) = "
    r"([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Rtt:
    """Round-trip times in milliseconds, as ping summarises them."""

    min: float
    avg: float
    max: float
    mdev: float


@dataclass(frozen=True)
class PingStats:
    """What one run of ping reported."""

    namespace: str
    destination: str
    transmitted: int
    received: int
    packet_loss: float
    rtt_ms: Rtt | None
    errors: int = 0
    time_ms: int | None = None

    @property
    def replied(self) -> bool:
        """True when at least one echo reply came back."""
        return self.received > 0

    def to_json(self) -> dict[str, Any]:
        """The stats as plain JSON-ready values."""
        rtt = self.rtt_ms
        return {
            "namespace": self.namespace,
            "destination": self.destination,
            "transmitted": self.transmitted,
            "received": self.received,
            "packet_loss": self.packet_loss,
            "rtt_ms": None if rtt is None else
            {"min": rtt.min, "avg": rtt.avg, "max": rtt.max, "mdev": rtt.mdev},
        }


def parse_ping(text: str, namespace: str, destination: str) -> PingStats:
    """Parse iputils ping output (IPv4 or IPv6) into PingStats."""
    summary = _SUMMARY.search(text)
    if summary is None:
        raise _no_statistics(text, namespace, destination)
    tx, rx = int(summary["tx"]), int(summary["rx"])
    rtt = _RTT.search(text)
    return PingStats(
        namespace=namespace,
        destination=destination,
        transmitted=tx,
        received=rx,
        packet_loss=_loss(summary["loss"], tx, rx),
        rtt_ms=Rtt(*(float(v) for v in rtt.groups())) if rtt and rx else None,
        errors=int(summary["err"] or 0),
        time_ms=int(summary["time"]) if summary["time"] else None,
    )


def _loss(printed: str | None, transmitted: int, received: int) -> float:
    if printed is not None:
        return float(printed)
    # ping leaves the loss out when it sent nothing
    return 0.0 if transmitted == 0 else 100.0 * (transmitted - received) / transmitted


def _no_statistics(text: str, namespace: str, destination: str) -> CommandFailed:
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    said = f"; it printed: {first}" if first else "; it printed nothing"
    error = CommandFailed(["ip", "netns", "exec", namespace, "ping", destination], 0,
                          f"no 'packets transmitted' line in ping's output{said}")
    error.hint = _diagnose_hint(namespace, destination)
    return error


def ping_argv(namespace: str, address: Address, count: int = 3, timeout: float = 1.0,
              interval: float = MIN_INTERVAL) -> list[str]:
    """The argv that runs the system ping inside a namespace."""
    check_netns(namespace)
    if count < 1:
        raise UsageError(f"ping count {count} is below 1", "send at least one echo request")
    if timeout <= 0:
        raise UsageError(f"ping timeout {timeout:g} s is not positive", "give a timeout above 0")
    if interval < MIN_INTERVAL:
        raise UsageError(f"ping interval {interval:g} s is below {MIN_INTERVAL:g} s",
                         f"use an interval of at least {MIN_INTERVAL:g} s")
    argv = ["ip", "netns", "exec", namespace, "ping", "-n", "-c", str(count),
            "-W", f"{timeout:g}", "-i", f"{interval:g}"]
    if address.version == 6:
        argv.append("-6")
    return [*argv, str(address)]


def ping(namespace: str, address: Address, count: int = 3, timeout: float = 1.0,
         runner: Runner | None = None) -> PingStats:
    """Run the system ping inside a namespace and return its statistics."""
    argv = ping_argv(namespace, address, count, timeout)
    if runner is None:
        require("ping")  # else a missing ping reads as a failed `ip netns exec`
    result = (runner or default_runner()).run(argv, check=False)
    destination = str(address)
    if _SUMMARY.search(result.stdout) is None:
        raise _ping_failed(result, namespace, destination)
    return parse_ping(result.stdout, namespace, destination)


def _ping_failed(result: Result, namespace: str, destination: str) -> CommandFailed:
    said = result.stderr.strip() or result.stdout.strip() or "ping printed no statistics"
    error = CommandFailed(result.argv, result.returncode, said)
    if "Cannot open network namespace" in said:
        missing = NoSuchNamespace(namespace)
        error.hint = f"{missing.message}; {missing.hint}"
    else:
        error.hint = _diagnose_hint(namespace, destination)
    return error


def _diagnose_hint(namespace: str, destination: str) -> str:
    return f"see 'vethwrap diagnose {namespace} {destination}'"
