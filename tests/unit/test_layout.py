"""The package's shape: layers kept (import-linter), no cycles, small modules, only cli/ prints."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "veth_wrap"
LAYERS = ("model", "compile", "run", "kernel", "check", "explain", "cli")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_folder_tree_is_the_layer_diagram():
    top = [p.name for p in PACKAGE.glob("*.py")]
    packages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    assert len(top) <= 8, top
    assert set(LAYERS) <= set(packages)


def test_layer_contracts_hold():
    tool = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(tool).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    done = subprocess.run([tool], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_import_cycles_lazy_imports_included():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("veth_wrap")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append((module, *back))
    assert not cycles, cycles[:5]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _writes_to_terminal(tree: ast.AST) -> list[int]:
    """Lines that print, or write to sys.stdout / sys.stderr."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "print":
            found.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr in ("write", "writelines") \
                and isinstance(node.value, ast.Attribute) \
                and node.value.attr in ("stdout", "stderr"):
            found.append(node.lineno)
        if isinstance(node, ast.keyword) and node.arg == "file":
            found.append(node.lineno)
    return found


@pytest.mark.parametrize("path", [p for p in _modules() if "cli" not in p.parts],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_cli_prints(path):
    assert _writes_to_terminal(ast.parse(path.read_text())) == []
