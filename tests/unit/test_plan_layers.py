"""A plan says what, a schedule says how: code asks an op's kind, never its words, and only
run/ knows how steps become processes."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from veth_wrap.compile.create import create_plan
from veth_wrap.model import shapes
from veth_wrap.model.topology import Kind
from veth_wrap.run import schedule
from veth_wrap.steps import Kind as OpKind
from veth_wrap.steps import Op, Plan, Step

PACKAGE = Path(__file__).resolve().parents[2] / "veth_wrap"
# where words are the business: run/ starts processes and renders the dry run
WORDS_ALLOWED = ("run/",)
ARGV = {"args"}  # an Op's words; anything's, but a click Context's (the user's own command)
NOT_OPS = {"ctx"}
UNDO = re.compile(r"(^|_)op$")  # an op's undo words (`undo` of a diagnosis is its fixes' map)
SEARCHES = {"index", "count", "startswith", "endswith", "find", "rfind"}
# what looks through a sequence when given one: set(op.args) & names, any(w == x for w in ...)
LOOKS_THROUGH = {"set", "frozenset", "list", "tuple", "sorted", "reversed", "enumerate", "zip",
                 "any", "all", "filter", "map", "dict", "next", "iter", "Counter"}


def _is_argv(node: ast.AST) -> bool:
    """op.args, op.undo, or the argv a step runs as (commands.argv(step), step.argv())."""
    if isinstance(node, ast.Attribute):
        base = node.value.id if isinstance(node.value, ast.Name) else ""
        if isinstance(node.value, ast.Subscript):  # step.ops[0].args
            base = "op"
        return (node.attr in ARGV and base not in NOT_OPS) or \
            (node.attr == "undo" and bool(UNDO.search(base)))
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name == "argv"
    return False


def _reads(node: ast.AST) -> bool:
    """True when node looks into argv: indexes, slices, compares, searches or iterates it."""
    if isinstance(node, ast.Subscript):
        return _is_argv(node.value)
    if isinstance(node, ast.Compare):  # `x in op.args`, `op.args == (...)`, `op.args[:2] != t`
        return any(_is_argv(side) for side in [node.left, *node.comparators])
    if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        return _is_argv(node.iter)
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], (ast.Tuple, ast.List)):
        return _is_argv(node.value)  # `verb, noun, *rest = op.args`
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in SEARCHES:
            return _is_argv(func.value) or any(_is_argv(arg) for arg in node.args)
        name = getattr(func, "id", "")
        return name in LOOKS_THROUGH and any(_is_argv(arg) for arg in node.args)
    if isinstance(node, ast.Match):
        return _is_argv(node.subject)
    return False


def argv_reads(tree: ast.AST) -> list[int]:
    """Lines where an op's words (or a step's argv) are indexed, sliced, compared, searched,
    unpacked or iterated: what decides something by them."""
    return [node.iter.lineno if isinstance(node, ast.comprehension) else node.lineno
            for node in ast.walk(tree) if _reads(node)]


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
    ("Op(Kind.UNDO, op.undo)", 0),
    ("op.kind is Kind.DEL_NETNS", 0),
    ("op.args == ('netns', 'del', ns)", 1),
    ("if op.undo != (): pass", 1),
    ("for word in op.args: pass", 1),
    ("[w for w in op.args if w.startswith('vp-')]", 1),
    ("bool(set(op.args) & names)", 1),
    ("any(word == 'dev' for word in op.args)", 1),
    ("verb, noun, *rest = op.args", 1),
    ("op.undo.count('del')", 1),
    ("commands.argv(step)[0] == 'tee'", 1),
    ("'-force' in argv(step)", 1),
    ("sorted(op.args)", 1),
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


SCHEDULE_WORDS = re.compile(r"\b(fus(e|ed|es|ing)|fusable|waves?|lanes?)\b", re.IGNORECASE)


def _identifier_words(tree: ast.AST) -> set[str]:
    """Every word of every name the code defines or uses (snake_case and CamelCase split)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.update(filter(None, [*node.name.split("."), node.asname]))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(node.module.split("."))
    split = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
    return {word.lower() for name in names for word in split.findall(name)}


def _prose(source: str, tree: ast.AST) -> str:
    """The docstrings and comments of a module."""
    docs = [ast.get_docstring(node) or "" for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef))]
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return "\n".join(docs + [tok.string for tok in tokens if tok.type == tokenize.COMMENT])


def schedule_talk(source: str) -> list[str]:
    """The words of how steps run (fusing, waves, lanes) in a module's names, docstrings
    and comments."""
    tree = ast.parse(source)
    words = [word for word in _identifier_words(tree) if SCHEDULE_WORDS.fullmatch(word)]
    return sorted(words) + [m.group(0) for m in SCHEDULE_WORDS.finditer(_prose(source, tree))]


def test_no_module_but_run_speaks_of_how_steps_run():
    found = {name: schedule_talk(path.read_text()) for name, path in _modules()
             if not name.startswith("run/")}
    assert not {name: words for name, words in found.items() if words}


# many reads in one process is the kernel reader's business (kernel/), running steps run/'s;
# `ip -batch`, the program's own flag, may be named anywhere
BATCH_WORDS = re.compile(r"(?<![-\w])batch(es|ed)?\b", re.IGNORECASE)


def batch_talk(source: str) -> list[str]:
    """Where a module speaks of batches: in its names, docstrings and comments."""
    tree = ast.parse(source)
    words = [word for word in _identifier_words(tree) if BATCH_WORDS.fullmatch(word)]
    return sorted(words) + [m.group(0) for m in BATCH_WORDS.finditer(_prose(source, tree))]


def test_only_run_and_the_kernel_reader_speak_of_batches():
    found = {name: batch_talk(path.read_text()) for name, path in _modules()
             if not name.startswith(("run/", "kernel/"))}
    assert not {name: words for name, words in found.items() if words}


@pytest.mark.parametrize("source, found", [
    ("def read_batch(): pass", ["batch"]),
    ('def f():\n    """In one batch."""', ["batch"]),
    ("x = 1  # `ip -batch` reports the failed line", []),
    ("from veth_wrap.kernel.readings import gather", []),
])
def test_the_batch_check_finds_what_it_looks_for(source, found):
    assert batch_talk(source) == found


@pytest.mark.parametrize("source, found", [
    ("def fused_steps(): pass", ["fused"]),
    ("from veth_wrap.run.schedule import Wave", ["wave"]),
    ("laneCount = 1", ["lane"]),
    ("x = 1  # the members' wave", ["wave"]),
    ('def f():\n    """Run them in lanes."""', ["lanes"]),
    ("lans = plan.lans  # LANs, a plane, waveform", []),
])
def test_the_talk_check_finds_what_it_looks_for(source, found):
    assert schedule_talk(source) == found


def run_imports(tree: ast.AST) -> list[str]:
    """The modules of run/ that code imports, at the top or inside a function."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("veth_wrap.run")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("veth_wrap.run"):
                found.append(node.module)
            elif node.module == "veth_wrap":
                found += [f"veth_wrap.{a.name}" for a in node.names if a.name == "run"]
    return found


def test_compile_imports_nothing_from_run():
    found = {name: run_imports(ast.parse(path.read_text())) for name, path in _modules()
             if name.startswith("compile/")}
    assert not {name: hits for name, hits in found.items() if hits}
    assert run_imports(ast.parse("def f():\n    from veth_wrap.run import together")) == [
        "veth_wrap.run"]
    assert run_imports(ast.parse("from veth_wrap import run, steps")) == ["veth_wrap.run"]


def test_every_op_has_a_kind():
    with pytest.raises(TypeError, match="Kind"):  # words and undo, as ops were once made
        Op(("link", "add", "x", "type", "bridge"), ("link", "del", "x"))


def test_the_schedule_of_a_small_lab_only_moves_adds_and_marks():
    """The plan adds and marks every namespace first; the schedule adds the first member's
    right before its step, which then marks it; every other op stays where it was."""
    plan = create_plan(shapes.build(["a", "b", "c"], kind=Kind.CHAIN), {})
    shown = schedule.shown(plan).steps
    assert sorted(map(id, (op for step in shown for op in step.ops))) == sorted(
        map(id, (op for step in plan.steps for op in step.ops)))
    moving = (OpKind.ADD_NETNS, OpKind.MARK_NETNS)
    assert [[op for op in step.ops if op.kind not in moving] for step in shown] == [
        [op for op in step.ops if op.kind not in moving] for step in plan.steps]
    assert shown[1].netns == "a" and shown[1].ops[0].kind is OpKind.MARK_NETNS
    assert shown[0].ops[-1].kind is OpKind.ADD_NETNS and shown[0].ops[-1].target == "a"
    waves = schedule.waves(plan)
    assert all(len(wave) == 1 and len(wave[0]) == 1 for wave in waves)
    assert [step for wave in waves for run in wave[0] for step in run] == shown


def test_independent_steps_that_each_start_a_process_run_at_once():
    """Steps that could never share a process (here: each reads its own stdin) run at once
    however few; the labels of fusable ones count only from PARALLEL_FROM namespaces."""
    steps = [Step((Op(OpKind.ADD_FIREWALL, ("netns", "exec", ns, "nft", "-f", "-"), netns=ns),),
                  input="table") for ns in ("a", "b")]
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
