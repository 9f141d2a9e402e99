"""A plan says what, a schedule says how: code asks an op's kind, never its words, and only
run/ knows how steps become processes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from veth_wrap.compile.create import create_plan
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind
from veth_wrap.run import schedule
from veth_wrap.steps import Kind as OpKind
from veth_wrap.steps import Op, Plan, Step

PACKAGE = Path(__file__).resolve().parents[2] / "veth_wrap"
# where words are the business: run/ starts processes, steps.py renders the dry run
WORDS_ALLOWED = ("run/", "steps.py")
ARGV = {"args"}  # an Op's words


def _is_argv(node: ast.AST) -> bool:
    """op.args, op.undo or step.argv()."""
    if isinstance(node, ast.Attribute) and node.attr in ARGV:
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
        and node.func.attr == "argv"


def argv_reads(tree: ast.AST) -> list[int]:
    """Lines where an op's words are indexed, sliced, searched or asked for an index."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_argv(node.value):
            found.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(
                isinstance(op, (ast.In, ast.NotIn)) and _is_argv(right)
                for op, right in zip(node.ops, node.comparators)):
            found.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("index", "count", "startswith", "endswith") \
                and _is_argv(node.func.value):
            found.append(node.lineno)
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path


def test_no_code_reads_an_ops_words_to_learn_what_it_does():
    offenders = {name: argv_reads(ast.parse(path.read_text()))
                 for name, path in _modules() if not name.startswith(WORDS_ALLOWED)}
    assert not {name: lines for name, lines in offenders.items() if lines}


@pytest.mark.parametrize("source, reads", [
    ("op.args[:2] == ('netns', 'del')", 1),
    ("x = op.args[op.args.index('dev') + 1]", 2),
    ("ns in op.args", 1),
    ("step.argv()[0] == 'tee'", 1),
    ("'-rf' not in step.argv()", 1),
    ("words = ('link',) + op.args", 0),  # building on them is fine
    ("op.kind is Kind.DEL_NETNS", 0),
])
def test_the_check_finds_what_it_looks_for(source, reads):
    assert len(argv_reads(ast.parse(source))) == reads


def test_compile_says_nothing_of_how_steps_run():
    words = re.compile(r"\b(fus(e|ed|ing)|fusable|waves?|lanes?|batch(es)?|spread|AT_ONCE|"
                       r"PARALLEL\w*|BESIDE|group=)\b", re.IGNORECASE)
    found = {name: words.findall(path.read_text()) for name, path in _modules()
             if name.startswith(("compile/", "check/readback", "steps.py"))}
    found["steps.py"] = [w for w in found["steps.py"] if w[0].lower() != "batch"]  # `-batch`
    assert not {name: hits for name, hits in found.items() if hits}


def test_every_op_has_a_kind():
    with pytest.raises(TypeError, match="Kind"):  # words and undo, as ops were once made
        Op(("link", "add", "x", "type", "bridge"), ("link", "del", "x"))


def test_schedule_leaves_the_plan_as_it_is_for_a_small_lab():
    plan = create_plan(shapes.build(["a", "b", "c"], kind=Kind.CHAIN), {})
    assert schedule.shown(plan) == plan
    waves = schedule.waves(plan)
    assert all(len(wave) == 1 and len(wave[0]) == 1 for wave in waves)
    assert [step for wave in waves for run in wave[0] for step in run] == plan.steps


def test_independent_steps_that_each_start_a_process_run_at_once():
    """Steps that could never share a process (here: each reads its own stdin) run at once
    however few; the labels of fusable ones count only from PARALLEL_FROM namespaces."""
    steps = [Step((Op(OpKind.ADD_FIREWALL, ("netns", "exec", ns, "nft", "-f", "-")),),
                  input="table", independent="faults") for ns in ("a", "b")]
    waves = schedule.waves(Plan(steps))
    assert len(waves) == 1 and len(waves[0]) == 2


SHAPES = [(kind, count) for kind in (Kind.CHAIN, Kind.MESH, Kind.BRIDGE) for count in (2, 5, 20)]


@pytest.mark.parametrize(("kind", "count"), [(Kind.PAIR, 2), *SHAPES])
def test_an_op_that_reaches_another_namespace_says_which(kind, count):
    """The schedule learns where reads may ride from op.netns, not from the words: every
    namespace an op's words name, other than its step's own, is its netns."""
    lab = shapes.build([f"n{i}" for i in range(count)], kind=kind)
    for plan in (create_plan(lab, {}), create_plan(lab, {}, host_ipv6=False)):
        for step in plan.steps:
            for op in step.ops:
                named = set(op.args) & set(lab.namespaces())
                assert named <= {step.netns, op.netns}, (step.netns, op)
