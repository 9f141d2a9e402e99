"""What a CLI user reaches for: --version, completion, --lab everywhere, --quiet, bare help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from inprocess import vethwrap

ROOT = Path(__file__).resolve().parents[2]


def test_version_comes_from_the_package_metadata():
    done = vethwrap("--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip() == f"vethwrap {metadata.version('vethwrap')}"
    data = json.loads(vethwrap("--version", "--json").stdout)
    assert data["name"] == "vethwrap" and data["version"] == metadata.version("vethwrap")


def test_no_arguments_print_the_help_and_succeed():
    done = vethwrap()
    assert done.returncode == 0, done.stderr
    assert "Labs:" in done.stdout and "create" in done.stdout  # the help, in its panels


def test_an_unknown_command_suggests_the_closest():
    done = vethwrap("destory", "x")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "'destroy'" in done.stderr


def _shim(tmp_path: Path) -> dict:
    """PATH and cwd under which `vethwrap` runs this checkout's code, as completion calls it."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "vethwrap").write_text(f"#!/bin/sh\nexec {sys.executable} -m veth_wrap \"$@\"\n")
    (shim / "vethwrap").chmod(0o755)
    return dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))


def _complete(env: dict, words: list[str]) -> list[str]:
    """Source `vethwrap --show-completion bash` and run its function on COMP_WORDS."""
    quoted = " ".join(f"'{w}'" for w in words)
    script = (f'eval "$(vethwrap --show-completion bash)"; COMP_WORDS=({quoted}); '
              f'COMP_CWORD={len(words) - 1}; _vethwrap_completion vethwrap; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.integration
def test_bash_completes_labs_namespaces_and_interfaces(netns, tmp_path, unchanged):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--lab", a, "--no-verify").returncode == 0
    env = _shim(tmp_path)
    assert a in _complete(env, ["vethwrap", "destroy", "--lab", ""])
    assert _complete(env, ["vethwrap", "destroy", "--lab", a[:-1]]) == [a] or \
        a in _complete(env, ["vethwrap", "destroy", "--lab", a[:-1]])
    assert b in _complete(env, ["vethwrap", "show", b[:-1]])
    assert _complete(env, ["vethwrap", "link", "set", a, ""]) == [f"vw-{b}"]
    assert vethwrap("destroy", "--lab", a).returncode == 0


@pytest.mark.integration
def test_quiet_keeps_stdout_and_status_and_silences_stderr(netns, unchanged):
    a, b = netns.name(), netns.name()
    loud = vethwrap("create", a, b, "--json")
    assert loud.returncode == 0
    again = vethwrap("create", a, b, "--json", "-q")
    assert again.returncode == 0 and again.stderr == ""
    assert json.loads(again.stdout)["links"] == json.loads(loud.stdout)["links"]
    assert vethwrap("--quiet", "create", a, b).stderr == ""
    gone = vethwrap("-q", "destroy", a, b, "--json")
    assert gone.returncode == 0 and gone.stderr == ""
    assert sorted(json.loads(gone.stdout)["namespaces"]) == sorted([a, b])
    failed = vethwrap("ping", a, "10.0.0.2", "-q")  # errors still print
    assert failed.returncode == 2 and "does not exist" in failed.stderr


@pytest.mark.integration
def test_every_lab_scoped_command_takes_lab(netns, tmp_path, unchanged):
    a, b, c, d = (netns.name() for _ in range(4))
    assert vethwrap("create", a, b, "--lab", a).returncode == 0
    assert vethwrap("create", c, d, "--lab", c, "--subnet", "10.7.0.0/24").returncode == 0
    shown = json.loads(vethwrap("show", "--lab", a, "--json").stdout)
    assert [lab["lab"] for lab in shown["labs"]] == [a]
    matrix = json.loads(vethwrap("pingall", "--lab", c, "--json").stdout)
    assert {p["source"] for p in matrix["pairs"]} == {c, d} and matrix["answered"] == 2
    drawn = vethwrap("graph", "--lab", a).stdout
    assert f"┤ {b}" in drawn or b in drawn
    changed = vethwrap("link", "set", "--lab", c, "--rate", "50mbit", "--json")
    assert changed.returncode == 0, changed.stderr
    ends = json.loads(changed.stdout)["ends"]
    assert len(ends) == 2 and all(e["impairments"]["rate"] == "50mbit" for e in ends)
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(f"name: {a}\nnamespaces: [{a}, {b}]\nlinks:\n  - between: [{a}, {b}]\n")
    assert [lab["lab"] for lab in json.loads(vethwrap("show", "-f", str(lab_file), "--json")
                                                .stdout)["labs"]] == [a]
    missing = vethwrap("show", "--lab", netns.name())
    assert missing.returncode == 2 and "no lab" in missing.stderr
    both = vethwrap("show", a, "--lab", a)
    assert both.returncode == 2
    assert vethwrap("destroy", "-f", str(lab_file)).returncode == 0
    assert vethwrap("destroy", "--lab", c).returncode == 0
