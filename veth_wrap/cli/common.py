"""Options every lab-scoped command shares, with one meaning and one help text."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from veth_wrap.cli.complete import complete_lab, complete_namespace

LAB_HELP = "Act on every namespace of this lab (as its marks in the kernel say)."
FILE_HELP = "Act on the lab this YAML lab file names."


def lab_option():
    """--lab NAME, completed from the kernel."""
    return typer.Option(None, "--lab", help=LAB_HELP, autocompletion=complete_lab)


def file_option():
    """-f FILE naming a lab."""
    return typer.Option(None, "--file", "-f", help=FILE_HELP)


def namespaces_argument(help_text: str):
    """Namespace names, completed from /run/netns."""
    return typer.Argument(None, help=help_text, autocompletion=complete_namespace)


def lab_name(lab: Optional[str], file: Optional[Path], prefix: str = "") -> Optional[str]:
    """The lab named by --lab or by -f FILE (not both), validated; None when neither is given."""
    from veth_wrap.errors import UsageError
    from veth_wrap.model import foreign, names

    if lab is not None and file is not None:
        raise UsageError("give --lab NAME or -f FILE, not both", "they both name a lab")
    if file is not None:
        return foreign.lab_name(file, prefix)
    return names.check_lab(prefix + lab) if lab is not None else None
