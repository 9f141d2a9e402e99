"""Every command, including ones added later, has help text."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from veth_wrap.cli import app as cli


def commands() -> dict[str, object]:
    """The registered commands by name, registering them once."""
    if not cli.app.registered_commands:
        cli._register_all()
    found = {}
    for info in cli.app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        found[name] = info.callback
    return found


def test_core_commands_are_registered():
    assert {"create", "destroy", "show", "ping"} <= set(commands())


@pytest.mark.parametrize("name", sorted(commands()))
def test_command_has_help(name):
    from typer.testing import CliRunner

    doc = (commands()[name].__doc__ or "").strip()
    assert doc, f"{name} has no docstring"
    result = CliRunner().invoke(cli.app, [name, "--help"], env={"COLUMNS": "200",
                                                                "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert " ".join(doc.splitlines()[0].split()) in " ".join(result.output.split())


def test_top_level_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "veth_wrap", "--help"], capture_output=True,
                          text=True, env={"COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin"})
    assert proc.returncode == 0
    for name in commands():
        assert name in proc.stdout


def _option_helps() -> list[tuple[str, str]]:
    """(command, help text) of every option and argument of every command."""
    import typer.main

    found = []
    for name, callback in commands().items():
        for param in typer.main.get_params_convertors_ctx_param_name_from_function(callback)[0]:
            found.append((name, getattr(param, "help", None) or ""))
    return found


@pytest.mark.parametrize("name,text", _option_helps())
def test_option_help_has_no_markup_that_rich_would_swallow(name, text):
    # typer renders help through rich markup, where "[default: x]" silently disappears
    assert "[" not in text, f"{name}: {text!r}"


def _help(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "veth_wrap", *args, "--help"],
                          capture_output=True, text=True,
                          env={"COLUMNS": "100", "NO_COLOR": "1", "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", ["run", "exec"])
def test_usage_line_shows_the_command_it_runs(name):
    assert _help(name).splitlines()[0] == f"Usage: vethwrap {name} [OPTIONS] NS -- CMD [ARG]..."


def test_usage_lines_name_arguments_plainly():
    assert _help("create").splitlines()[0] == "Usage: vethwrap create [OPTIONS] [NS...]"
    assert _help("link", "set").splitlines()[0] == \
        "Usage: vethwrap link set [OPTIONS] [NS] [INTERFACE]"


def test_top_level_help_groups_commands_in_panels():
    text = _help()
    panels = re.findall(r"^(\w+):\n((?:  .*\n?)+)", text, flags=re.M)
    listed = {title: [row.split()[0] for row in rows.splitlines()] for title, rows in panels}
    assert ["Labs", "Traffic", "Software", "Explain", "Files"] == \
        [title for title in listed if title != "Options"]  # none left in a bare "Commands"
    assert {"create", "destroy", "show"} <= set(listed["Labs"])
    assert {"run", "exec", "ps", "stop", "logs"} <= set(listed["Software"])
    assert {"diagnose", "doctor"} <= set(listed["Explain"])
    assert {"up", "down", "validate", "graph"} <= set(listed["Files"])
    everywhere = [name for title, names in listed.items() if title != "Options" for name in names]
    groups = [group.name for group in cli.app.registered_groups if not group.hidden]
    assert sorted(everywhere) == sorted([*commands(), *groups])  # each command once
