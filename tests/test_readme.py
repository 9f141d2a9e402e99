"""Every command the README shows runs, in order, with the exit status the README implies.

The README's namespaces are ns0, ns1, ...; here they get a per-run prefix, and lab files get
`--prefix`, so nothing collides with what else is on the machine. `$ ` lines run through
`sh -c` exactly as a user would paste them; `# exit N` at the end of a line is the expected
status (0 otherwise). The Python examples run too: the API block as a script, the fixture
block as a test file in its own pytest run.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RUN_ID

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PREFIX = f"vr{RUN_ID}"  # the run's id: concurrent runs tell their objects apart
FILE_COMMANDS = ("up", "down", "validate", "graph")
pytestmark = pytest.mark.integration


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.M | re.S)


def shell_lines(text: str) -> list[tuple[str, int]]:
    """Every `$ ` command with its expected exit status, in README order."""
    found = []
    for _, body in blocks(text):
        for line in body.splitlines():
            if line.startswith("$ "):
                command, _, note = line[2:].partition("# exit ")
                found.append((command.strip(), int(note) if note else 0))
    return found


def localise(command: str) -> str:
    """The README's names made unique to this run."""
    command = re.sub(r"\bns(\d+)\b", lambda m: f"{PREFIX}{m.group(1)}", command)
    words = command.split()
    if len(words) > 1 and words[0] == "vethwrap" and words[1] in FILE_COMMANDS and "-f" in words:
        command += f" --prefix {PREFIX}-"
    return command


@pytest.fixture
def shim(tmp_path):
    """A PATH where `vethwrap` is this checkout's CLI; and, at the end, removal of our names."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vethwrap"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m veth_wrap "$@"\n')
    script.chmod(0o755)
    yield dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", NO_COLOR="1", COLUMNS="100",
               PYTHONPATH=str(ROOT))
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in (line.split()[0] for line in listed.splitlines() if line.strip()):
        if name.startswith(PREFIX) or name.startswith(f"vethwrap-{PREFIX}"):
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_readme_shows_commands_of_every_kind():
    shown = {cmd.split()[1] for cmd, _ in shell_lines(README) if cmd.startswith("vethwrap ")}
    assert {"create", "ping", "show", "pingall", "destroy", "diagnose", "up", "down", "validate",
            "graph", "link", "exec"} <= shown
    assert not any("--all" in cmd for cmd, _ in shell_lines(README))  # never in a shared test


def test_every_shell_command_runs_as_the_readme_says(shim):
    for command, expected in shell_lines(README):
        local = localise(command)
        done = subprocess.run(["sh", "-c", local], cwd=ROOT, env=shim, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == expected, f"{local}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, local
        if "--json" in local.split():
            json.loads(done.stdout)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert PREFIX not in listed, "the README's examples leave namespaces behind"


def _python_blocks() -> list[str]:
    return [body for lang, body in blocks(README) if lang == "python"]


def test_api_example_runs(shim):
    api = next(body for body in _python_blocks() if "veth_wrap.create" in body)
    done = subprocess.run([sys.executable, "-c", localise(api)], cwd=ROOT, env=shim,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"netns add {PREFIX}0" in done.stdout  # the dry run it printed
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert PREFIX not in listed


def test_fixture_example_passes(shim, tmp_path):
    example = next(body for body in _python_blocks() if "vethwrap_lab" in body)
    (tmp_path / "test_example.py").write_text(example)
    plugins = [ep.name for ep in importlib.metadata.entry_points(group="pytest11")]
    extra = [] if "vethwrap" in plugins else ["-p", "veth_wrap.pytest_plugin"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *extra, "test_example.py"], cwd=tmp_path, env=shim,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
