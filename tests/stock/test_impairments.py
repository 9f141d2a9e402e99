"""Link impairments on a kernel that has sch_netem: delay, jitter, netem's loss, a rate.

Runs inside the stock-kernel guest (see conftest.py). Every measurement is also written for the
outer test's report. Each CLI call costs seconds under TCG, so these labs are removed by the
finalizer (`ip netns del` by exact name); test_labs.py checks `vethwrap destroy`.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .guest import address, impairments, measured, run, vethwrap, vethwrap_json

pytestmark = pytest.mark.stock_kernel


def test_delay_shows_twice_in_the_round_trip(names):
    a, b = names(2)
    created = vethwrap_json("create", a, b, "--delay", "50ms")
    assert created["verified"], created
    rtt = vethwrap_json("ping", a, address(created, b), "--count", "5")["rtt_ms"]
    measured("delay 50ms each end: ping rtt ms", rtt)
    assert 95 <= rtt["avg"] <= 160, rtt


def test_jitter_spreads_the_round_trips_and_is_shown(names):
    a, b = names(2)
    created = vethwrap_json("create", a, b, "--delay", "20ms", "--jitter", "10ms")
    shown = impairments(a, b)
    end = shown[a, f"vw-{b}"]
    assert end.get("qdisc") == "netem", shown
    assert (end.get("delay"), end.get("jitter")) == ("20ms", "10ms"), shown
    assert shown[b, f"vw-{a}"] == end, shown
    result = vethwrap_json("ping", a, address(created, b), "--count", "20")
    rtt = result["rtt_ms"]
    measured("delay 20ms jitter 10ms each end: ping rtt ms (20 pings)", rtt)
    assert result["received"] >= 18, result
    assert rtt["mdev"] > 1.0, rtt
    assert 20 <= rtt["avg"] <= 90 and rtt["max"] - rtt["min"] > 5, rtt


def test_netem_loss_is_netem_and_drops_about_as_asked(names):
    a, b = names(2)
    created = vethwrap_json("create", a, b, "--loss", "30%", "--no-verify")
    shown = impairments(a)[a, f"vw-{b}"]
    assert shown.get("qdisc") == "netem" and shown.get("loss") == "30%", shown
    assert "filter" not in shown, f"netem's loss is shown as the BPF filter's: {shown}"
    count = 150
    result = vethwrap_json("ping", a, address(created, b), "--count", str(count), check=False)
    # a request and its reply each cross one 30% end: 1 - 0.7 * 0.7 = 51% expected, and the
    # band is about four standard deviations (4.1 points at 150 pings) either side
    measured(f"loss 30% each end: ping loss % ({count} pings, 51% expected)",
             result["packet_loss"])
    assert result["transmitted"] == count, result
    assert 34 <= result["packet_loss"] <= 68, result


def _listening(namespace: str, port: int) -> bool:
    out = run("ip", "netns", "exec", namespace, "ss", "-Hltn", f"sport = :{port}").stdout
    return bool(out.strip())


def test_rate_limits_a_real_transfer(names, request):
    a, b = names(2)
    created = vethwrap_json("create", a, b, "--rate", "2mbit")
    server_addr = address(created, b)
    server = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s", "-1", "-B",
                               server_addr, "-p", "5201"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def stop_server():
        if server.poll() is None:
            server.terminate()  # the one process this test started, by its PID
            server.wait(timeout=30)  # -1: it serves one test and exits

    request.addfinalizer(stop_server)
    deadline = time.monotonic() + 60
    while not _listening(b, 5201):
        assert server.poll() is None and time.monotonic() < deadline, "iperf3 -s did not listen"
        time.sleep(0.5)
    done = vethwrap("exec", a, "--", "iperf3", "-c", server_addr, "-p", "5201", "-t", "6",
                    "-O", "1", "-J", timeout=120)
    report = json.loads(done.stdout)
    mbit = report["end"]["sum_received"]["bits_per_second"] / 1e6
    measured("rate 2mbit each end: iperf3 TCP goodput Mbit/s (6 s, first s omitted)",
             round(mbit, 3))
    assert 1.3 <= mbit <= 2.3, report["end"]
    server.wait(timeout=30)  # -1: it serves one test and exits
