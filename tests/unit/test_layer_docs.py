"""The layer tables of the Development page and the package docstring match the code."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import veth_wrap

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "veth_wrap"
PAGE = ROOT / "docs" / "development.md"


def _contract_layers() -> list[set[str]]:
    """setup.cfg's layers, top first, each a set of names under veth_wrap."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["importlinter:contract:layers"]["layers"].split("\n")
    return [{part.strip().removeprefix("veth_wrap.") for part in line.split("|")}
            for line in lines if line.strip()]


def _table(heading: str) -> list[str]:
    """The first column of the table under a heading of the page, names without `/`."""
    text = PAGE.read_text().split(heading, 1)[1]
    rows = re.findall(r"^\| `([^`|]+)`", text.split("\n\n|", 1)[1].split("\n\n", 1)[0], re.M)
    return [row.rstrip("/") for row in rows]


def _modules(folder: Path) -> set[str]:
    """Sub-packages and modules of a folder, without dunder files."""
    return {p.stem for p in folder.iterdir()
            if not p.name.startswith("__") and (p.suffix == ".py" or (p / "__init__.py").exists())}


def test_the_page_lists_every_layer_in_the_contract_order() -> None:
    flat = [name for layer in _contract_layers() for name in sorted(layer)]
    listed = _table("## The layers")
    assert sorted(listed) == sorted(flat), "the page's layer table and setup.cfg differ"
    order = {name: i for i, layer in enumerate(_contract_layers()) for name in layer}
    assert [order[name] for name in listed] == sorted(order[name] for name in listed)


def test_every_part_of_the_package_is_a_layer() -> None:
    layers = {name for layer in _contract_layers() for name in layer}
    assert _modules(PACKAGE) == layers


def test_the_run_table_names_every_module_of_run() -> None:
    text = PAGE.read_text().split("| `run/` module | job |", 1)[1].split("\n\n", 1)[0]
    named = {word for cell in re.findall(r"^\| ([^|]+) \|", text, re.M)
             for word in re.findall(r"`([a-z_]+)`", cell)}
    assert named == _modules(PACKAGE / "run")


def test_the_package_docstring_names_each_layer_in_order() -> None:
    lines = [line.split()[0] for line in veth_wrap.__doc__.splitlines()
             if line.startswith("  ") and not line.startswith("   ") and line.split()]
    names = [line.rstrip("/") for line in lines if line.rstrip("/") in _modules(PACKAGE)]
    assert names == [n for layer in _contract_layers() for n in sorted(layer)]
