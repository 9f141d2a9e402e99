"""Every example lab file is built, pinged and torn down; an edited file applies the difference."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from inprocess import vethwrap

from veth_wrap.model import labfile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_built_pinged_and_torn_down(path, prefixed):
    prefix = prefixed(path)
    lab = labfile.load(path, prefix)
    built = vethwrap("up", "-f", str(path), "--prefix", prefix, "--json")
    assert built.returncode == 0, built.stderr
    again = vethwrap("up", "-f", str(path), "--prefix", prefix)
    assert again.returncode == 0 and "nothing changed" in again.stderr
    pinged = vethwrap("pingall", *lab.members)
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    drawn = vethwrap("graph", "--lab", lab.name)
    assert drawn.returncode == 0 and all(ns in drawn.stdout for ns in lab.members)
    down = vethwrap("down", "-f", str(path), "--prefix", prefix)
    assert down.returncode == 0, down.stderr
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in lab.namespaces())


def test_edited_file_adds_and_removes_the_difference(prefixed, tmp_path):
    first = tmp_path / "lab.yaml"
    first.write_text("name: edit\nnamespaces: [a, r, b]\nsubnet: 10.0.0.0/24\n"
                     "links: [[a, r], [r, b]]\nforwarding: [r]\nroutes:\n"
                     "  a: [{to: 10.0.0.0/24, via: 10.0.0.2}]\n"
                     "  b: [{to: 10.0.0.0/24, via: 10.0.0.5}]\n")
    prefix = prefixed(first)
    assert vethwrap("up", "-f", str(first), "--prefix", prefix).returncode == 0
    second = tmp_path / "lab2.yaml"
    second.write_text("name: edit\nnamespaces: [a, r, c]\nsubnet: 10.0.0.0/24\n"
                      "links: [[a, r], [r, c]]\nforwarding: [r]\nroutes:\n"
                      "  a: [{to: 10.0.0.4/30, via: 10.0.0.2}]\n"
                      "  c: [{to: 10.0.0.0/24, via: 10.0.0.5}]\n")
    prefixed(second)
    planned = vethwrap("up", "-f", str(second), "--prefix", prefix, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert f"netns del {prefix}b" in planned.stdout
    assert "route del 10.0.0.0/24 via 10.0.0.2" in planned.stdout
    assert f"netns add {prefix}c" in planned.stdout
    done = vethwrap("up", "-f", str(second), "--prefix", prefix)
    assert done.returncode == 0, done.stderr
    settled = vethwrap("up", "-f", str(second), "--prefix", prefix, "--dry-run")
    assert settled.stdout.count("\n") == 1
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{prefix}c" in listed and f"{prefix}b " not in listed + " "
    assert vethwrap("destroy", "--lab", f"{prefix}edit").returncode == 0
