"""One kernel reader: explain/ reads only through kernel/, and no code asks a runner's class.

Read from the source with `ast`: a `netns exec` line or an argv of ip/tc/nft/... handed to a
runner in explain/ is a read that bypasses kernel/ (its batching, its tolerance of namespaces
that vanish, the recorded output tests replay); an `isinstance` on a runner class makes unit
tests with a fake runner take another path than production.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "veth_wrap"
READ_TOOLS = {"ip", "tc", "nft", "bridge", "sysctl", "iptables-save", "ip6tables-save",
              "iptables-legacy-save", "ip6tables-legacy-save", "iptables", "ip6tables"}
RUNNERS = {"Runner", "ShRunner", "Counted", "RecordingRunner"}


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose may name `netns exec`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _texts(tree: ast.AST):
    """Every string the code builds (constants and the literal parts of f-strings)."""
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in prose:
            yield node.lineno, node.value


def _read_argv(node: ast.AST) -> bool:
    """A list or tuple written out as argv of a program that reads the kernel."""
    if not isinstance(node, (ast.List, ast.Tuple)) or not node.elts:
        return False
    first = node.elts[0]
    words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
    return isinstance(first, ast.Constant) and first.value in READ_TOOLS and "-V" not in words


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _runs_argv(tree: ast.AST):
    """Calls handed a written-out read argv: of run-like functions (run, _run, quick_run ...),
    or of helpers handed the runner too."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        args = [*node.args, *(k.value for k in node.keywords)]
        runs = "run" in _callee(node).lower() or any(
            getattr(arg, "id", getattr(arg, "attr", "")) in ("runner", "nets") for arg in args)
        if runs and any(_read_argv(arg) for arg in args):
            yield node.lineno, ast.unparse(node)[:80]


@pytest.mark.parametrize("path", _modules("explain"), ids=lambda p: p.name)
def test_explain_builds_no_read_of_its_own(path):
    tree = ast.parse(path.read_text())
    lines = [f"{path.name}:{n}: {text!r}" for n, text in _texts(tree) if "netns exec" in text]
    calls = [f"{path.name}:{n}: {text}" for n, text in _runs_argv(tree)]
    assert not lines + calls, "read through kernel/ instead: " + "; ".join(lines + calls)


def _asks_runner_class(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee(node) in ("isinstance", "issubclass") \
                and len(node.args) == 2:
            names = {getattr(n, "id", getattr(n, "attr", "")) for n in ast.walk(node.args[1])}
            if names & RUNNERS or any(name.endswith("Runner") for name in names):
                yield node.lineno, ast.unparse(node)


@pytest.mark.parametrize("path", [p for p in _modules(".") if p.parent.name != "run"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_code_outside_run_asks_a_runner_class(path):
    found = [f"{n}: {text}" for n, text in _asks_runner_class(ast.parse(path.read_text()))]
    assert not found, "every runner takes the same path: " + "; ".join(found)


def test_the_checks_see_what_they_forbid():
    """The checks themselves: each finds a planted example."""
    planted = ast.parse('def f(runner, ns):\n'
                        '    runner.run(["ip", "-j", "addr", "show"])\n'
                        '    x = f"netns exec {ns} ip -j route show"\n'
                        '    return isinstance(runner, ShRunner)\n'
                        '_json(runner, ["bridge", "-j", "fdb", "show"])\n')
    assert sorted(n for n, _ in _runs_argv(planted)) == [2, 5]
    assert [n for n, t in _texts(planted) if "netns exec" in t] == [3]
    assert [n for n, _ in _asks_runner_class(planted)] == [4]
    fine = ast.parse('def f(runner):\n    """Reads `netns exec` lines."""\n'
                     '    runner.run(["ip", "-V"])\n    return ["ip", "netns", "exec"]\n')
    assert not list(_runs_argv(fine)) and not [t for _, t in _texts(fine) if "netns exec" in t]
