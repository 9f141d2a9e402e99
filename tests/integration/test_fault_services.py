"""Faults that run as services of the lab: flaps, timed impairments, timelines. The CLI runs
in-process, but where it starts one of these services, which outlives the command (cli)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import until
from inprocess import vethwrap

from veth_wrap import api
from veth_wrap.faults.partition import fault_services
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind

pytestmark = pytest.mark.integration


def _lab(netns, kind: Kind = Kind.BRIDGE, count: int = 3):
    spaces = [netns.name() for _ in range(count)]
    lab = shapes.build(spaces, kind=kind, lab=spaces[0])
    api.create(lab)
    return lab


def _carrier_changes(ns: str, ifname: str) -> int:
    return int(subprocess.run(["ip", "netns", "exec", ns, "cat",
                               f"/sys/class/net/{ifname}/carrier_changes"],
                              capture_output=True, text=True, check=True).stdout)


def _services(ns: str) -> list[str]:
    return [p.service for p in fault_services([ns])]


def test_link_flap_from_the_cli_is_counted_by_carrier_changes(netns, cli):
    lab = _lab(netns, Kind.PAIR, 2)
    a, b = lab.members
    end = lab.ends_in(a)[0].ifname
    try:
        before = _carrier_changes(a, end)
        done = cli("link", "flap", a, end, "--down", "0.4s", "--up", "0.4s", "--count", "2")
        assert done.returncode == 0, done.stderr
        assert "fault-flap-" in done.stdout
        until(lambda: not _services(a), "the flap service's end")
        assert _carrier_changes(a, end) - before == 4
        log = vethwrap("logs", a, f"fault-flap-{end}")
        assert [json.loads(x)["event"] for x in log.stdout.splitlines()] == \
            ["down", "up", "down", "up", "stopped"]
        assert vethwrap("ping", a, b, "-c", "1", "-W", "2").returncode == 0
        bad = vethwrap("link", "flap", a, "nosuchif", "--down", "1s")
        assert bad.returncode == 2 and "has no interface" in bad.stderr
    finally:
        vethwrap("destroy", "--lab", lab.name)


def _impairments(ns: str, ifname: str) -> dict:
    return api.describe(ns, ifname)["impairments"]


def test_a_timed_loss_ends_on_its_own_with_the_earlier_settings_back(netns, cli):
    lab = _lab(netns, Kind.PAIR, 2)
    a, _ = lab.members
    end = lab.ends_in(a)[0].ifname
    try:
        assert vethwrap("link", "set", a, end, "--rate", "20mbit").returncode == 0
        before = _impairments(a, end)
        done = cli("link", "set", a, end, "--loss", "20%", "--for", "6s")
        assert done.returncode == 0, done.stderr
        assert _impairments(a, end)["loss"] == "20%"
        assert f"fault-restore-{end}" in _services(a)
        until(lambda: _impairments(a, end) == before, "the earlier settings", 40)
        until(lambda: not _services(a), "the restore service's end")
        again = vethwrap("link", "set", a, end, "--mtu", "1400", "--for", "1s")
        assert again.returncode == 2 and "--for times impairments" in again.stderr
    finally:
        vethwrap("destroy", "--lab", lab.name)


def test_a_timed_loss_ends_even_when_the_command_that_placed_it_was_killed(netns):
    lab = _lab(netns, Kind.PAIR, 2)
    a, _ = lab.members
    end = lab.ends_in(a)[0].ifname
    env = dict(os.environ, NO_COLOR="1")
    placing = subprocess.Popen([sys.executable, "-m", "veth_wrap", "link", "set", a, end,
                                "--loss", "30%", "--for", "8s"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: _impairments(a, end).get("loss") == "30%", "the loss in place")
        try:
            os.kill(placing.pid, signal.SIGKILL)  # as soon as the loss is seen
        except ProcessLookupError:
            pass
        placing.wait(timeout=30)
        assert f"fault-restore-{end}" in _services(a)  # it outlives what started it
        until(lambda: _impairments(a, end) == {}, "the loss gone on time", 40)
    finally:
        placing.kill()
        placing.wait()
        api.destroy(lab=lab.name)


def test_destroy_stops_a_pending_restore_and_heal_ends_it_early(netns, cli):
    lab = _lab(netns, Kind.PAIR, 2)
    a, _ = lab.members
    end = lab.ends_in(a)[0].ifname
    try:
        assert cli("link", "set", a, end, "--loss", "10%", "--for", "300s").returncode == 0
        healed = vethwrap("heal", "--lab", lab.name, "--json")
        assert healed.returncode == 0, healed.stderr
        assert len(json.loads(healed.stdout)["stopped"]) == 1
        assert _impairments(a, end) == {}  # put back as heal stopped it
        assert cli("link", "set", a, end, "--loss", "10%", "--for", "300s").returncode == 0
    finally:
        done = vethwrap("destroy", "--lab", lab.name, "--json")
    assert done.returncode == 0, done.stderr
    assert [s["name"] for s in json.loads(done.stdout)["stopped"]] == [f"fault-restore-{end}"]


TIMELINE = """
events:
  - {{at: 0.5s, partition: "{a} {b},{c}"}}
  - {{at: 2s, heal: true}}
  - {{at: 2.5s, flap: {{namespace: {b}, down: 0.3s, up: 0.3s, count: 1}}}}
  - {{at: 3s, impair: {{namespace: {c}, loss: 50%, for: 1s}}}}
  - {{at: 3.5s, partition: [[{a}], [{c}]], oneway: true}}
"""


def test_a_timeline_logs_its_events_in_order_with_their_times(netns, cli, tmp_path):
    lab = _lab(netns)
    a, b, c = lab.members
    path = tmp_path / "timeline.yaml"
    path.write_text(TIMELINE.format(a=a, b=b, c=c))
    try:
        started = time.time()
        done = cli("faults", "--lab", lab.name, "-f", str(path), "--json")
        assert done.returncode == 0, done.stderr
        home = json.loads(done.stdout)["namespace"]
        log = until(lambda: _finished(home), "the timeline's last event")
        events = [json.loads(line) for line in log]
        assert [e["event"] for e in events] == ["start", "partition", "heal", "flap", "impair",
                                                "partition", "done"]
        assert all(e.get("ok", True) for e in events), events
        times = [e["unix"] for e in events]
        assert times == sorted(times) and times[0] >= started - 1
        for event in events[1:-1]:  # each began at (or just after) its time from the start
            # never early; late only by what the events before it took (a loaded host)
            assert event["at"] - 0.05 <= event["began"] - events[0]["unix"] < event["at"] + 60
            assert event["began"] <= event["unix"]
        assert events[2]["removed"] == 3 and events[5]["oneway"] is True
        shown = json.loads(vethwrap("show", "--lab", lab.name, "--json").stdout)["labs"][0]
        assert [p["namespace"] for p in shown["faults"]["partitions"]] == [c]
    finally:
        vethwrap("destroy", "--lab", lab.name)


def _finished(home: str):
    lines = vethwrap("logs", home, "fault-timeline").stdout.splitlines()
    return lines if lines and json.loads(lines[-1])["event"] == "done" else None


def test_a_random_timeline_is_the_same_for_the_same_seed_and_bad_ones_are_refused(
        netns, tmp_path):
    lab = _lab(netns)
    try:
        one = vethwrap("faults", "--lab", lab.name, "--seed", "7", "--duration", "40s", "-n")
        two = vethwrap("faults", "--lab", lab.name, "--seed", "7", "--duration", "40s", "-n")
        other = vethwrap("faults", "--lab", lab.name, "--seed", "8", "--duration", "40s", "-n")
        assert one.returncode == 0, one.stderr
        assert one.stdout == two.stdout != other.stdout
        events = json.loads(one.stdout)
        assert events and all(0 < e["at"] for e in events)
        assert {e["action"] for e in events} <= {"partition", "heal", "flap"}
        for text, said in [("- {at: 1s}", "must have one of"), ("[]", "a list of events"),
                           ("- {at: soon, heal: true}", "not a duration"),
                           ("- {at: 1s, partition: 'x y'}", "does not exist")]:
            path = tmp_path / "bad.yaml"
            path.write_text(text)
            done = vethwrap("faults", "--lab", lab.name, "-f", str(path))
            assert done.returncode == 2 and said in done.stderr, (text, done.stderr)
        assert not _services(lab.members[0])
    finally:
        vethwrap("destroy", "--lab", lab.name)
