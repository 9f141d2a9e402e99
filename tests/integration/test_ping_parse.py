"""ping.py: real iputils ping output recorded on Debian 12 (tests/data/ping) in, PingStats out."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest
from conftest import ip
from fakes import RecordingRunner

from veth_wrap.check.ping import PingStats, Rtt, parse_ping, ping, ping_argv
from veth_wrap.errors import CommandFailed, UsageError
from veth_wrap.model.destination import parse_address
from veth_wrap.run.runner import Result

DATA = Path(__file__).parent.parent / "data" / "ping"
NS = "lab-a"

# file, destination, transmitted, received, loss, rtt, errors, time_ms
RECORDED = [
    ("ipv4_reply", "10.200.0.2", 3, 3, 0.0, Rtt(0.053, 0.063, 0.080, 0.012), 0, 405),
    ("ipv4_quiet", "10.200.0.2", 3, 3, 0.0, Rtt(0.035, 0.049, 0.056, 0.009), 0, 408),
    ("ipv4_partial_loss", "10.200.0.2", 10, 5, 50.0, Rtt(0.036, 0.061, 0.109, 0.025), 0, 1836),
    ("ipv4_no_answer", "10.200.0.2", 3, 0, 100.0, None, 0, 408),
    ("ipv4_host_unreachable", "10.200.0.98", 6, 0, 100.0, None, 3, 5105),
    ("ipv6_reply", "fd00:200::2", 3, 3, 0.0, Rtt(0.036, 0.052, 0.060, 0.011), 0, 407),
    ("ipv6_no_answer", "fd00:200::2", 3, 0, 100.0, None, 0, 408),
    ("ipv6_address_unreachable", "fd00:200::98", 6, 0, 100.0, None, 3, 5108),
]

# recorded stderr of runs that printed no statistics, with ping's exit status
FAILED = [
    ("ipv4_network_unreachable", "10.99.0.1", 2, "Network is unreachable"),
    ("ipv6_network_unreachable", "fd00:99::1", 2, "Network is unreachable"),
    ("no_such_namespace", "10.200.0.2", 255, "Cannot open network namespace"),
]


def recorded(name: str) -> str:
    """The text of one recording."""
    return (DATA / f"{name}.txt").read_text()


def answering(stdout: str, stderr: str = "", code: int = 0) -> RecordingRunner:
    """A fake runner answering every command with the given output."""
    return RecordingRunner(lambda argv, stdin: Result(argv, stdout, stderr, code))


@pytest.mark.parametrize("name,dest,tx,rx,loss,rtt,errors,time_ms", RECORDED,
                         ids=[row[0] for row in RECORDED])
def test_parse_recorded(name, dest, tx, rx, loss, rtt, errors, time_ms):
    expected = PingStats(NS, dest, tx, rx, loss, rtt, errors, time_ms)
    assert parse_ping(recorded(name), NS, dest) == expected


@pytest.mark.parametrize("name,dest,code,said", FAILED, ids=[row[0] for row in FAILED])
def test_ping_without_statistics_raises(name, dest, code, said):
    runner = answering("", recorded(f"{name}.stderr"), code)
    with pytest.raises(CommandFailed) as caught:
        ping(NS, ip_address(dest), runner=runner)
    error = caught.value
    assert error.exit_code == 1 and error.returncode == code
    assert said in error.message and "ping -n" in error.message
    assert NS in error.hint and ("vethwrap diagnose" in error.hint or "vethwrap show" in error.hint)


def test_network_unreachable_hint_names_diagnose():
    runner = answering("", recorded("ipv4_network_unreachable.stderr"), 2)
    with pytest.raises(CommandFailed) as caught:
        ping(NS, ip_address("10.99.0.1"), runner=runner)
    assert caught.value.hint == "see 'vethwrap diagnose lab-a 10.99.0.1'"


def test_ping_exit_1_with_statistics_parses():
    runner = answering(recorded("ipv4_host_unreachable"), code=1)
    stats = ping(NS, ip_address("10.200.0.98"), runner=runner)
    assert (stats.received, stats.errors, stats.replied) == (0, 3, False)
    assert runner.calls[0][0] == tuple(ping_argv(NS, ip_address("10.200.0.98")))


def test_to_json_exact_keys():
    stats = parse_ping(recorded("ipv6_reply"), NS, "fd00:200::2")
    assert stats.to_json() == {
        "namespace": NS, "destination": "fd00:200::2", "transmitted": 3, "received": 3,
        "packet_loss": 0.0, "rtt_ms": {"min": 0.036, "avg": 0.052, "max": 0.060, "mdev": 0.011},
    }
    assert parse_ping(recorded("ipv4_no_answer"), NS, "10.200.0.2").to_json()["rtt_ms"] is None


def test_duplicates_pipe_and_fractional_loss():
    text = ("3 packets transmitted, 2 received, +1 duplicates, +2 errors, "
            "33.3333% packet loss, time 2003ms\n"
            "rtt min/avg/max/mdev = 0.010/0.020/0.030/0.004 ms, pipe 2\n")
    stats = parse_ping(text, NS, "10.0.0.1")
    assert (stats.received, stats.errors, stats.packet_loss) == (2, 2, 33.3333)
    assert stats.rtt_ms == Rtt(0.01, 0.02, 0.03, 0.004)


def test_garbage_raises_clear_error():
    with pytest.raises(CommandFailed, match="no 'packets transmitted' line"):
        parse_ping("ping: unknown host\n", NS, "10.0.0.1")


def test_argv_ipv4_and_ipv6():
    assert ping_argv(NS, ip_address("10.0.0.2")) == [
        "ip", "netns", "exec", NS, "ping", "-n", "-c", "3",
        "-W", "1", "-i", "0.2", "10.0.0.2"]
    argv = ping_argv(NS, ip_address("fd00::2"), count=5, timeout=0.5, interval=1)
    assert argv[5:] == ["-n", "-c", "5", "-W", "0.5", "-i", "1", "-6", "fd00::2"]


@pytest.mark.parametrize("kwargs", [
    {"count": 0}, {"timeout": 0}, {"interval": 0.1}, {"namespace": "-bad"},
])
def test_argv_refuses_bad_input(kwargs):
    args = {"namespace": NS, "address": ip_address("10.0.0.2"), **kwargs}
    with pytest.raises(UsageError):
        ping_argv(**args)


@pytest.mark.parametrize("destination", ["-f", "example.org", "10.0.0.300"])
def test_what_is_not_an_address_is_refused_before_ping(destination):
    with pytest.raises(UsageError, match="is not an IP address"):
        parse_address(destination)


@pytest.mark.integration
def test_real_ping_through_the_runner(unchanged, netns):
    a, b = netns.make("a"), netns.make("b")
    ip("link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
    for ns, dev, n in ((a, "va", 1), (b, "vb", 2)):
        ip("-n", ns, "addr", "add", f"10.76.0.{n}/24", "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")
    stats = ping(a, ip_address("10.76.0.2"), count=2, timeout=1)
    assert (stats.transmitted, stats.received, stats.packet_loss) == (2, 2, 0.0)
    assert stats.rtt_ms is not None and stats.rtt_ms.min <= stats.rtt_ms.max
    with pytest.raises(CommandFailed, match="Network is unreachable"):
        ping(a, ip_address("10.79.0.1"), count=1)
