"""Every command, including ones added later, has help text."""

from __future__ import annotations

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
