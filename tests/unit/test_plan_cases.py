"""Plans from data (tests/data/plans/*.json): each case's lab and facts compiled, and the plan
compared with the one it expects, as ops per namespace (see tests/plancases.py)."""

from __future__ import annotations

import dataclasses
import difflib
import os

import pytest
from plancases import CASES, REGEN, compile_case, load, render, stable

from veth_wrap.compile.create import create_plan
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind
from veth_wrap.steps import Plan

FILES = sorted(CASES.glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_plan_case(path):
    case = load(path)
    got = compile_case(case)
    if os.environ.get(REGEN):
        path.write_text(render({**case, "expected": got}))
        return
    assert "expected" in case, f"{path.name} has no expected plan yet: run with {REGEN}=1"
    if got != case["expected"]:
        diff = difflib.unified_diff(render(case["expected"]).splitlines(),
                                    render(got).splitlines(), "expected", "compiled",
                                    lineterm="", n=2)
        pytest.fail(f"{path.name}: the plan differs ({case['about']})\n" + "\n".join(diff)
                    + f"\nif the change is meant: {REGEN}=1 python3 -m pytest -q "
                    f"{os.path.relpath(__file__)}, then read git diff {os.path.relpath(CASES)}",
                    pytrace=False)


def test_case_files_are_as_the_regeneration_writes_them():
    """Hand edits keep the one layout, so that a regeneration's diff shows only changes."""
    assert len(FILES) >= 15
    for path in FILES:
        assert path.read_text() == render(load(path)), path.name


def test_a_changed_op_is_shown_in_the_diff(monkeypatch):
    """The comparison fails on a changed word, and names the op that changed."""
    if os.environ.get(REGEN):
        pytest.skip("regenerating")
    path = CASES / "pair.json"
    case = load(path)
    ops = case["expected"]["ops"]["ns1"]
    ops[-1] = {**ops[-1], "words": ops[-1]["words"].replace("10.0.0.2", "10.0.0.9")}
    monkeypatch.setattr("test_plan_cases.load", lambda _: case)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)-.*10\.0\.0\.9.*\+.*10\.0\.0\.2"):
        test_plan_case(path)


def test_the_comparison_ignores_how_ops_are_grouped_into_steps_but_not_their_order():
    plan = create_plan(shapes.build(["ns0", "ns1", "ns2"], kind=Kind.CHAIN), {})
    alone = [dataclasses.replace(step, ops=(op,)) for step in plan.steps for op in step.ops]
    # other interleaving: grouped by the namespace each op acts in, in order within each
    by_netns = sorted(alone, key=lambda step: step.netns or step.ops[0].netns or "")
    assert stable(Plan(by_netns, plan.notes)) == stable(plan)
    inside = next(i for i, step in enumerate(alone) if step.netns == "ns1")
    swapped = alone[:inside] + [alone[inside + 1], alone[inside]] + alone[inside + 2:]
    assert stable(Plan(swapped, plan.notes)) != stable(plan)
