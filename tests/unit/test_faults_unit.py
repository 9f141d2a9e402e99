"""Faults as pure data: who drops whom, the nft text, a ruleset read back, plans, timelines.

Recorded `nft -j list ruleset` output stands in for the kernel here; every behaviour also
has its test on real namespaces (test_partition.py, test_fault_services.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from veth_wrap.compile import faults as compile_faults
from veth_wrap.errors import ConflictError, UsageError
from veth_wrap.model import faults, timeline
from veth_wrap.model.names import Mark

DATA = Path(__file__).parent.parent / "data" / "nft"


def test_a_twoway_partition_drops_every_other_group_and_oneway_only_the_first():
    three = faults.Partition("lab", (("a",), ("b", "c"), ("d",)))
    assert three.unheard() == {"a": ("b", "c", "d"), "b": ("a", "d"), "c": ("a", "d"),
                               "d": ("a", "b", "c")}
    one = faults.Partition("lab", (("a",), ("b", "c"), ("d",)), oneway=True)
    assert one.unheard() == {"b": ("a",), "c": ("a",), "d": ("a",)}
    assert one.mark() == Mark("lab", "partition", "oneway")


@pytest.mark.parametrize("groups, said", [([["a"]], "at least two groups"),
                                          ([["a"], []], "empty group"),
                                          ([["a", "b"], ["b"]], "in two groups")])
def test_bad_groups_are_refused(groups, said):
    with pytest.raises(UsageError, match=said):
        faults.check_groups(groups)


def test_the_table_text_holds_both_families_and_the_mark():
    text = faults.table_script(Mark("l", "partition", "twoway"),
                               ["10.0.0.2/24", "fd00::2/64", "10.0.0.2"])
    assert "elements = { 10.0.0.2 };" in text and "elements = { fd00::2 };" in text
    assert text.count('comment "vethwrap/l/partition/twoway"') == 2
    assert "hook input priority -300; policy accept;" in text


def test_a_ruleset_read_back_names_the_table_its_addresses_and_drops():
    doc = json.loads((DATA / "partition_ruleset.json").read_text())
    table = faults.parse_ruleset("ns", doc)
    assert table.ours and table.mark.lab == "fltq" and table.mark.kind == "twoway"
    assert table.addresses == ("10.0.0.2", "10.0.0.3") and table.dropped == 7
    bare = {"nftables": [item for item in doc["nftables"] if "rule" not in item]}
    assert not faults.parse_ruleset("ns", bare).ours  # vethwrap's name, not its mark
    only_mine = {"nftables": doc["nftables"][:2]}
    assert faults.parse_ruleset("ns", only_mine) is None


def test_a_partition_plan_undoes_each_table_and_refuses_one_in_place():
    part = faults.Partition("l", (("a",), ("b",)))
    plan = compile_faults.partition_plan(part, {"a": ["10.0.0.1/24"], "b": ["10.0.0.2/24"]},
                                         {})
    assert [s.ops[0].args[:3] for s in plan.steps] == [("netns", "exec", "a"),
                                                       ("netns", "exec", "b")]
    assert plan.steps[0].ops[0].undo == compile_faults.delete_words("a")
    assert "10.0.0.2" in plan.steps[0].input and "10.0.0.1" in plan.steps[1].input
    held = faults.FaultTable("b", Mark("l", "partition", "twoway"))
    with pytest.raises(ConflictError, match="partitioned already"):
        compile_faults.partition_plan(part, {}, {"b": held})
    with pytest.raises(ConflictError, match="did not write"):
        compile_faults.partition_plan(part, {}, {"a": faults.FaultTable("a", None)})


def test_heal_removes_only_vethwrap_s_tables_of_the_lab_asked():
    tables = [faults.FaultTable("a", Mark("l", "partition", "twoway")),
              faults.FaultTable("b", None), faults.FaultTable("c", Mark("m", "partition", "x"))]
    plan = compile_faults.heal_plan(tables, "l")
    assert [op.args for s in plan.steps for op in s.ops] == [compile_faults.delete_words("a")]
    assert len(compile_faults.heal_plan(tables).steps) == 2


@pytest.mark.parametrize("word, value", [("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), (3, 3.0),
                                         ("0.25", 0.25)])
def test_durations(word, value):
    assert faults.seconds(word) == value


def test_a_timeline_file_parses_in_time_order():
    events = timeline.parse({"lab": "x", "events": [
        {"at": "20s", "heal": True}, {"at": "5s", "partition": "a,b c", "oneway": True},
        {"at": "25s", "flap": {"namespace": "a", "down": "1s", "count": 2}},
        {"at": "30s", "impair": {"namespace": "b", "loss": "5%", "for": "10s"}}]})
    assert [(e.at, e.action) for e in events] == [(5.0, "partition"), (20.0, "heal"),
                                                 (25.0, "flap"), (30.0, "impair")]
    assert events[0].groups == (("a", "b"), ("c",)) and events[0].oneway
    assert timeline.Event.from_json(events[2].to_json()) == events[2]


@pytest.mark.parametrize("data, said", [
    ([{"heal": True}], "no 'at:'"), ([{"at": "1s", "heal": True, "flap": {}}], "one of"),
    ([{"at": "1s", "impair": {"namespace": "a", "loss": "5%"}}], "needs for:"),
    ([{"at": "1s", "flap": {"namespace": "a", "speed": 3}}], "no key 'speed'"),
    ([{"at": "1s", "partition": 5}], "takes groups"), ("heal", "a list of events")])
def test_bad_timelines_are_refused(data, said):
    with pytest.raises(UsageError, match=said):
        timeline.parse(data)


def test_a_drawn_timeline_is_the_seed_s_own_and_stays_in_bounds():
    members, links = ["a", "b", "c"], {"a": "vb-x", "b": "vb-x", "c": "vb-x"}
    bounds = timeline.Bounds(duration=120)
    one = timeline.drawn(5, members, links, bounds)
    assert one == timeline.drawn(5, members, links, bounds)
    assert one != timeline.drawn(6, members, links, bounds)
    assert all(0 < e.at < 120 + bounds.hold[1] for e in one)
    for event in one:
        if event.action == "partition":
            assert sorted(n for g in event.groups for n in g) == members
    partitions = [e for e in one if e.action == "partition"]
    heals = [e for e in one if e.action == "heal"]
    assert len(partitions) == len(heals)


def test_a_timeline_file_that_cannot_be_read_is_one_refusal(tmp_path):
    with pytest.raises(UsageError, match="cannot be read") as refused:
        timeline.load(str(tmp_path / "missing.yaml"))
    assert "timeline file" in refused.value.hint
    broken = tmp_path / "broken.yaml"
    broken.write_text("events: [\n")
    with pytest.raises(UsageError, match=r"broken.yaml:2: not valid YAML"):
        timeline.load(str(broken))
    good = tmp_path / "good.yaml"
    good.write_text("lab: x\nevents:\n  - {at: 1s, heal: true}\n")
    assert timeline.load(str(good)) == ([timeline.Event(1.0, "heal")], "x")
