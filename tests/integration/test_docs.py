"""The pages say what the program does: every console example runs and prints what it shows.

README.md and every page under docs/ (not docs/drafts/): each ```console block is run on real
namespaces with the run's names and compared with the page (tests/docexamples.py); the Python
examples run too, the API block as a script and the fixture block as a test file in its own
pytest run. A page whose output drifted fails with a diff; `python3 tests/docexamples.py PAGE`
writes the printed output back.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import docexamples
import pytest
from conftest import RUN_ID

ROOT = docexamples.ROOT
STEM = f"vr{RUN_ID}"  # the run's id: concurrent runs tell their objects apart
PAGES = docexamples.pages()
pytestmark = pytest.mark.integration


@pytest.fixture
def shell(tmp_path):
    """The pages' shell environment; what a page left behind is removed by exact name."""
    env = docexamples.shell_env(tmp_path / "bin", columns=160)
    yield env
    docexamples.cleanup(STEM, env)


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_console_examples_print_what_the_page_shows(page, shell):
    session = docexamples.Session(docexamples.Names(STEM), shell)
    _, failures = docexamples.run_page(page, session)
    left = docexamples.cleanup(STEM, shell)
    assert not failures, "\n\n".join(failures)
    assert not left, f"{_name(page)}'s examples leave namespaces behind: {left}"


def test_pages_show_commands_of_every_kind():
    shown = set()
    for page in PAGES:
        for block in re.findall(r"^```console\n(.*?)^```$", page.read_text(), re.M | re.S):
            shown |= {s.command.split()[1] for s in docexamples.steps(block)
                      if s.command.startswith("vethwrap ")}
    assert {"create", "ping", "show", "pingall", "destroy", "diagnose", "up", "down", "validate",
            "graph", "link", "exec", "run", "ps", "stop", "doctor"} <= shown
    for page in PAGES:  # never in a shared test: it would remove other people's labs
        assert "destroy --all" not in page.read_text().replace("`destroy --all`", "")


def test_console_blocks_start_with_a_command():
    for page in PAGES:
        for block in re.findall(r"^```console\n(.*?)^```$", page.read_text(), re.M | re.S):
            assert docexamples.steps(block), f"{_name(page)}: an empty console block"


def test_normalising_keeps_what_matters():
    same = docexamples.same
    assert same(["│ ns0 │ 1234 │ web │ 4s │"], ["│ ns0   │ 98765 │ web   │ 12s │"])
    assert not same(["│ ns0 │ 1234 │ web │"], ["│ ns0 │ 1234 │ db  │"])
    assert same(["a", "...", "z"], ["a", "b", "c", "z"])
    assert not same(["verified: 2/2 probes answered"], ["verified: 1/2 probes answered"])
    neighbours = "lab ns0 can make {} IPv4 neighbour entries; with the {} in the table now"
    assert same([neighbours.format(1056, 26)], [neighbours.format(1056, 3)])
    assert not same([neighbours.format(1056, 26)], [neighbours.format(1122, 26)])
    assert not same(["lab ns0 is already built"], ["lab ns0 (pair)", "lab ns0 is already built"])
    assert not same(["a", "...", "z"], ["a", "b"])
    stopped = ["stopped ns1 pid 32760 (web) with SIGTERM", "stopped ns1 pid 300 (dns) with SIGTERM"]
    assert same(stopped, stopped[::-1])  # listed in PID order, and PIDs wrap
    assert not same(stopped, [stopped[0], stopped[0]])
    assert not same(["a", *stopped], [stopped[0], "a", stopped[1]])
    logged = '{"time": "2026-12-06T17:07:43.319+00:00", "event": "heal", "removed": 3}'
    assert same([logged], [logged.replace("2026-12-06T17:07:43.319", "2027-01-02T03:04:05.6")])
    assert not same([logged], [logged.replace('"removed": 3', '"removed": 2')])
    dropped = "ns0 drops what ns1 sends (twoway partition, 3 packet(s) dropped)"
    assert same([dropped], [dropped.replace("3 packet", "12 packet")])
    assert not same([dropped], [dropped.replace("twoway", "oneway")])


def test_here_documents_belong_to_their_command():
    block = "$ cat > f <<'EOF'\nline\n$ not a command\nEOF\n$ cat f  # exit 1\nline\n"
    first, second = docexamples.steps(block)
    assert first.command == "cat > f <<'EOF'\nline\n$ not a command\nEOF" and not first.shown
    assert (second.command, second.status, second.shown) == ("cat f", 1, ["line"])
    assert len(docexamples.steps("$ cat <<< word\nword\n")) == 1


def _python_blocks() -> list[str]:
    found = []
    for page in PAGES:
        found += re.findall(r"^```python\n(.*?)^```$", page.read_text(), re.M | re.S)
    return found


def _local(code: str) -> str:
    return re.sub(r"\bns(\d+)\b", lambda m: f"{STEM}{m.group(1)}", code)


def test_api_example_runs(shell):
    api = next(body for body in _python_blocks() if "veth_wrap.create" in body)
    done = subprocess.run([sys.executable, "-c", _local(api)], cwd=ROOT, env=shell,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"netns add {STEM}0" in done.stdout  # the dry run it printed
    assert not docexamples.namespaces_of((STEM,))


def test_fixture_examples_pass(shell, tmp_path):
    examples = [body for body in _python_blocks() if "vethwrap_lab" in body]
    for number, example in enumerate(examples):
        (tmp_path / f"test_example_{number}.py").write_text(example)
    plugins = [ep.name for ep in importlib.metadata.entry_points(group="pytest11")]
    extra = [] if "vethwrap" in plugins else ["-p", "veth_wrap.pytest_plugin"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *extra, "."], cwd=tmp_path, env=shell,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(examples)} passed" in done.stdout and len(examples) >= 2


def test_command_reference_is_the_help():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_reference.py"),
                           "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _commands() -> set[str]:
    from veth_wrap.cli import app as cli

    if not cli.app.registered_commands:  # registered once per process
        cli._register_all()
    found = {info.name or info.callback.__name__.replace("_", "-")
             for info in cli.app.registered_commands}
    for group in cli.app.registered_groups:  # a hidden group is vethwrap's own, not the user's
        found |= {f"{group.name} {info.name}" for info in group.typer_instance.registered_commands
                  if not group.hidden}
    return found


def test_commands_page_says_what_each_command_changes_on_the_host():
    text = (ROOT / "docs" / "commands.md").read_text()
    table = text.split("## What each command changes on the host", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([^`]+)` \| (.+) \|$", table, flags=re.M))
    missing = _commands() - set(rows)
    assert not missing, f"docs/commands.md does not say what these change on the host: {missing}"
    assert not set(rows) - _commands(), "the table names commands that do not exist"
