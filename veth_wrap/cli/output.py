"""Where output goes: results on stdout, talk on stderr, colour only on a terminal."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _color_system() -> str | None:
    return None if os.environ.get("NO_COLOR") else "auto"


_consoles: dict[str, Any] = {}


def out():
    """The rich console for results (stdout)."""
    if "out" not in _consoles:
        from rich.console import Console

        _consoles["out"] = Console(color_system=_color_system(), soft_wrap=False)
    return _consoles["out"]


def err():
    """The rich console for talk (stderr): progress, notes, warnings."""
    if "err" not in _consoles:
        from rich.console import Console

        _consoles["err"] = Console(stderr=True, color_system=_color_system(), highlight=False,
                                 soft_wrap=True)
    return _consoles["err"]


QUIET = {"on": False}  # -q/--quiet: notes and progress stay off stderr; errors still print


def say(message: str) -> None:
    """A note for the user on stderr (none with --quiet)."""
    if QUIET["on"]:
        return
    err().print(message, markup=False) if "[" in message else err().print(message)


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def emit_script(lines: list[str]) -> None:
    """Print dry-run shell lines on stdout, exactly as given."""
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def table(title: str | None, columns: list[str]):
    """A rich table with the project's look."""
    from rich.table import Table

    tbl = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        # fold, never "…": a cut address or name is worse than a taller table
        tbl.add_column(column, overflow="fold")
    return tbl


def error_line(message: str) -> None:
    """The single error line on stderr."""
    err().print(f"[bold red]error:[/] {escape(message)}")


def escape(text: str) -> str:
    """Escape rich markup in user-provided text."""
    from rich.markup import escape as _escape

    return _escape(text)
