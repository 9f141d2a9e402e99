"""Probing at scale without a kernel: rounds, flushes, retries and what verification pings."""

from __future__ import annotations

import importlib
import json

import pytest
from fakes import RecordingRunner

from veth_wrap.check import reach
from veth_wrap.check.rawping import Probe, ProbeResult
from veth_wrap.check.verify import HUB_SPEAKS_FROM, probe_pairs, ring, verify
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind
from veth_wrap.run import schedule
from veth_wrap.run.runner import Result


def ring_probes(count: int) -> tuple[list[Probe], dict[str, str]]:
    names = [f"n{i}" for i in range(count)]
    owner = {f"10.0.{i // 200}.{i % 200 + 1}": name for i, name in enumerate(names)}
    addresses = list(owner)
    probes = [Probe(names[i], addresses[(i + 1) % count]) for i in range(count)]
    return probes, owner


class FakeProbing:
    """Stands in for probe_all: records each call, answers all but the `lost` probes once."""

    def __init__(self, lost: set[Probe] = frozenset(), lost_times: int = 1) -> None:
        self.calls: list[list[Probe]] = []
        self.lost = {probe: lost_times for probe in lost}

    def __call__(self, probes, timeout=1.0, attempts=3):
        self.calls.append(list(probes))
        results = []
        for probe in probes:
            missed = self.lost.get(probe, 0) > 0
            if missed:
                self.lost[probe] -= 1
            results.append(ProbeResult(probe, not missed, None if missed else 0.1,
                                       "no reply" if missed else None))
        return results


@pytest.fixture
def fake(monkeypatch):
    probing = FakeProbing()
    monkeypatch.setattr(reach, "probe_all", probing)
    monkeypatch.setattr(reach, "neighbour_budget", lambda versions=(4,): 40)
    return probing


def flushed(recording: RecordingRunner) -> list[str]:
    return [line.split()[2] for _, stdin in recording.calls for line in (stdin or "").splitlines()]


def test_the_short_round_goes_first_and_the_last_is_not_flushed(fake):
    probes, owner = ring_probes(50)  # 50 pairs, 20 a wave: waves of 10, 20, 20
    recording = RecordingRunner()
    results = reach.probe_rounds(probes, owner, runner=recording)
    assert [len(call) for call in fake.calls] == [10, 20, 20]
    assert [r.probe for r in results] == probes and all(r.replied for r in results)
    # the entries of the waves before the last are flushed, the last wave's stay
    waves = [{p.source for p in call} | {owner[p.destination] for p in call}
             for call in fake.calls]
    assert sorted(flushed(recording)) == sorted(ns for wave in waves[:2] for ns in wave)


def test_a_flush_makes_room_for_a_bigger_next_round(fake, monkeypatch):
    budgets = iter([40, 100])  # a table holding others' entries at first, then emptier
    monkeypatch.setattr(reach, "neighbour_budget", lambda versions=(4,): next(budgets))
    probes, owner = ring_probes(50)
    reach.probe_rounds(probes, owner, runner=RecordingRunner())
    assert [len(call) for call in fake.calls] == [10, 40]


def test_one_round_needs_no_flush(fake):
    probes, owner = ring_probes(15)
    recording = RecordingRunner()
    reach.probe_rounds(probes, owner, runner=recording)
    assert len(fake.calls) == 1 and recording.calls == []


def test_a_lost_probe_is_tried_again_after_the_rest(fake):
    probes, owner = ring_probes(15)
    fake.lost = {probes[3]: 1}
    results = reach.probe_rounds(probes, owner, runner=RecordingRunner())
    assert fake.calls[-1] == [probes[3]] and all(r.replied for r in results)


def test_a_probe_that_never_answers_fails_after_two_more_tries(fake):
    probes, owner = ring_probes(15)
    fake.lost = {probes[3]: 10}
    results = reach.probe_rounds(probes, owner, runner=RecordingRunner())
    assert fake.calls[1:] == [[probes[3]]] * reach.RETRIES
    assert [r.probe for r in results if not r.replied] == [probes[3]]


def test_a_broken_lab_is_not_tried_again(fake, monkeypatch):
    monkeypatch.setattr(reach, "neighbour_budget", lambda versions=(4,): 1000)
    probes, owner = ring_probes(reach.RETRY_AT_MOST + 1)
    fake.lost = {probe: 1 for probe in probes}
    results = reach.probe_rounds(probes, owner, runner=RecordingRunner())
    assert len(fake.calls) == 1 and not any(r.replied for r in results)


def test_the_budget_leaves_room_for_what_the_table_holds(monkeypatch, tmp_path):
    for family, limit in (("ipv4", 1024), ("ipv6", 2048)):
        (tmp_path / family).write_text(f"{limit}\n")
    monkeypatch.setattr(reach, "GC_THRESH3", str(tmp_path / "{}"))
    held = {4: 100, 6: 0}
    monkeypatch.setattr(reach, "_entries", lambda version: held[version])
    assert reach.neighbour_budget({4}) == 768 - 100
    assert reach.neighbour_budget({6}) == 1536
    assert reach.neighbour_budget({4, 6}) == 668  # the tighter table decides
    held[4] = 720
    assert reach.neighbour_budget() == 64  # never below a floor that still makes progress


def test_a_bridge_is_probed_in_pairs_both_ways_and_covers_every_member():
    lab = shapes.build([f"m{i}" for i in range(7)])
    pairs = probe_pairs(lab)
    sources = [src for src, _, _ in pairs]
    targets = [tgt for _, tgt, _ in pairs]
    assert set(sources) == set(targets) == set(lab.members)
    assert all((tgt, src) in {(s, t) for s, t, _ in pairs} for src, tgt, _ in pairs)
    assert len({frozenset((s, t)) for s, t, _ in pairs}) == 4  # 7 members: 3 pairs and one more


def test_a_chain_is_still_probed_around_the_ring():
    lab = shapes.build(["c0", "c1", "c2"], kind=Kind.CHAIN)
    assert probe_pairs(lab) == ring(lab)


def test_spread_keeps_order_and_splits_evenly():
    items = list(range(10))
    parts = schedule.spread(items, 4)
    assert [x for part in parts for x in part] == items
    assert [len(part) for part in parts] == [3, 3, 2, 2]
    assert schedule.spread([1], 4) == [[1]] and schedule.spread([], 4) == []


def _hub_json(lab) -> str:
    """What `ip -j -d addr show` prints in a healthy hub: the bridge up, every port on it."""
    bridge = lab.bridges[0].name
    links = [{"ifname": bridge, "ifindex": 2, "flags": ["UP", "LOWER_UP"], "operstate": "UP",
              "linkinfo": {"info_kind": "bridge"}, "addr_info": []}]
    links += [{"ifname": link.b.ifname, "ifindex": 3 + i, "flags": ["UP", "LOWER_UP"],
               "operstate": "UP", "master": bridge, "linkinfo": {"info_kind": "veth"},
               "addr_info": []} for i, link in enumerate(lab.links)]
    return json.dumps(links)


def test_a_big_bridge_is_checked_from_its_hub_alone():
    lab = shapes.build([f"m{i}" for i in range(HUB_SPEAKS_FROM)])
    recording = RecordingRunner(lambda argv, stdin: Result(argv, _hub_json(lab), "", 0))
    report = verify(lab, recording, reach=False)
    assert report.ok, report.problems
    assert [stdin for _, stdin in recording.calls] == [f"netns exec {lab.hub} ip -j -d addr show\n"]


def test_a_port_without_carrier_fails_the_check_from_the_hub(monkeypatch):
    monkeypatch.setattr(importlib.import_module("veth_wrap.check.verify"), "SETTLE", 0.0)
    lab = shapes.build([f"m{i}" for i in range(HUB_SPEAKS_FROM)])
    down = _hub_json(lab).replace('"UP", "LOWER_UP"], "operstate": "UP", "master"',
                                  '"UP"], "operstate": "LOWERLAYERDOWN", "master"', 1)
    report = verify(lab, RecordingRunner(lambda argv, stdin: Result(argv, down, "", 0)),
                    reach=False)
    assert report.problems == [f"vp-m0 in {lab.hub} is not up (state LOWERLAYERDOWN)"]
