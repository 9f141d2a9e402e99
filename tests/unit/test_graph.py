"""Drawings of labs: the text picture against recorded output, dot accepted by Graphviz."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from veth_wrap.model import drawing as graph
from veth_wrap.model import labfile

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent.parent / "data" / "graph"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_text_drawing_matches_recorded(path):
    drawn = graph.draw(labfile.load(path), "text")
    assert drawn == (DATA / f"{path.stem}.txt").read_text()
    assert max(len(line) for line in drawn.splitlines()) <= 80


def test_mermaid_matches_recorded():
    drawn = graph.draw(labfile.load(ROOT / "examples" / "campus.yaml"), "mermaid")
    assert drawn == (DATA / "campus.mmd").read_text()


def test_dozen_namespaces_fit_in_80_columns():
    text = "name: dozen\nnamespaces: [%s]\nbridges:\n  - members: [%s]\n" % (
        (", ".join(f"host{i:02}" for i in range(12)),) * 2)
    drawn = graph.text(labfile.parse(text))
    assert drawn.count("┤ host") == 12 and max(map(len, drawn.splitlines())) <= 80


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_dot_is_accepted_by_graphviz(path):
    source = graph.draw(labfile.load(path), "dot")
    result = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout


def test_graph_needs_one_source(cli):
    result = cli("graph")
    assert result.returncode == 2 and "--lab NAME or -f FILE" in result.stderr


def test_graph_of_file_on_the_command_line(cli):
    result = cli("graph", "-f", str(ROOT / "examples" / "chain.yaml"))
    assert result.returncode == 0
    assert result.stdout == (DATA / "chain.txt").read_text()


@pytest.mark.parametrize("fmt", ["text", "dot", "mermaid"])
def test_every_format_ends_its_last_line(cli, fmt):
    # a missing final newline glues the shell prompt or the next command's output to the drawing
    result = cli("graph", "-f", str(ROOT / "examples" / "pair.yaml"), "--format", fmt)
    assert result.returncode == 0 and result.stdout.endswith("\n")
