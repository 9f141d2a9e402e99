"""Lab files of every format: vethwrap's own, containerlab's (*.clab.yml), Kathara's lab.conf."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Union

from veth_wrap.model import labfile, names, safeyaml
from veth_wrap.model.topology import Lab

CLAB_ENDINGS = (".clab.yml", ".clab.yaml")
KATHARA_NAME = "lab.conf"
IGNORE_HINT = "leave them out of the file, or give --ignore-unsupported to build without them"


def format_of(source: Union[str, Path]) -> str:
    """lab (vethwrap's YAML), clab or kathara, by the file's name."""
    name = os.path.basename(str(source))
    if name.endswith(CLAB_ENDINGS):
        return "clab"
    return "kathara" if name == KATHARA_NAME else "lab"


def parse(text: str, source: str, prefix: str = "", ignore_unsupported: bool = False) -> Lab:
    """The Lab a file of any format describes; extra holds exec commands and notes."""
    kind = format_of(source)
    if kind == "lab":
        return labfile.parse(text, source, prefix)
    imported = _convert(kind, text, source)
    problems = imported.problems + ([] if ignore_unsupported else imported.unsupported)
    try:
        lab = labfile.from_doc(imported.data, imported.lines, source, prefix, problems)
    except labfile.LabFileError as exc:
        if imported.unsupported and not ignore_unsupported:
            exc.hint = IGNORE_HINT
        raise
    notes = imported.notes + [f"ignored: {u}" for u in imported.unsupported]
    execs = [(prefix + node, argv) for node, argv in imported.execs]
    return dataclasses.replace(lab, extra={**lab.extra, "exec": execs, "notes": notes})


def _convert(kind: str, text: str, source: str):
    from veth_wrap.model import clab, kathara

    if kind == "kathara":
        return kathara.convert(text, source)
    try:
        return clab.convert(text, source)
    except safeyaml.Refused as exc:
        raise labfile.LabFileError(source, [f"{source}:{exc.line or 1}: {exc.message}"],
                                   exc.hint) from None


def lab_name(path: Union[str, Path], prefix: str = "") -> str:
    """Only the lab's name, for down and destroy -f (the rest may be wrong)."""
    if format_of(path) == "lab":
        return labfile.lab_name(path, prefix)
    source = labfile.source_name(path)
    imported = _convert(format_of(path), labfile.read_text(path), source)
    name = imported.data.get("name") if imported.data else None
    if not isinstance(name, str):
        raise labfile.LabFileError(source, [f"{source}:1: name: missing"])
    return names.check_lab(prefix + name)
