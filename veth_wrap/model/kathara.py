"""Kathara labs (a folder with lab.conf) read as labs of namespaces.

Each collision domain becomes a bridge, each `NODE[N]=DOMAIN` line the node's interface ethN
on it, and `NODE.startup` beside lab.conf runs inside the node's namespace (a shell script by
nature: run as `bash FILE`, as Kathara does) once the links are up. The lab is named by
LAB_NAME, else after its folder. Node options a namespace cannot honour, and node folders
(copied into containers by Kathara), are named with their lines.
"""

from __future__ import annotations

import os
import re

from veth_wrap.model.clab import Imported

LINE = re.compile(r'\s*([A-Za-z0-9_.-]+)\[([A-Za-z0-9_]+)\]\s*=\s*"?([^"]*)"?\s*\Z')
META = re.compile(r'\s*LAB_([A-Z_]+)\s*=\s*"?([^"]*)"?\s*\Z')


def convert(text: str, source: str) -> Imported:
    """The lab a lab.conf describes; source is its path (startup files sit beside it)."""
    out = Imported(source)
    folder = os.path.dirname(os.path.abspath(source))
    nodes: list[str] = []
    domains: dict[str, dict] = {}
    images, named = [], ""
    for number, raw in enumerate(text.splitlines(), 1):
        meta = META.match(raw)
        if meta and meta.group(1) == "NAME":
            named = meta.group(2).strip()
        if not raw.strip() or raw.lstrip().startswith("#") or meta:
            continue
        found = LINE.match(raw)
        if not found:
            out.problems.append(out.at(number, f"not a lab.conf line: {raw.strip()[:60]!r}"))
            continue
        node, key, value = found.groups()
        if node not in nodes:
            out.lines[("namespaces", len(nodes))] = number
            nodes.append(node)
        if key.isdigit():
            _attach(out, domains, node, int(key), value, number)
        elif key == "image":
            images.append(node)
        else:
            out.unsupported.append(out.at(number, f"{node}[{key}]: not supported by "
                                          "namespaces"))
    if images:
        out.notes.append(f"{source}: images are not used: namespaces share the host's files "
                         f"({', '.join(images)})")
    for node in nodes:
        _startup(out, folder, node)
    name = named or re.sub(r"[^A-Za-z0-9_.-]", "-", os.path.basename(folder)).lstrip(".-")
    out.data = {"name": name or "kathara",
                "namespaces": nodes, "bridges": list(domains.values()), "routes": {}}
    return out


def _attach(out: Imported, domains: dict, node: str, index: int, value: str,
            number: int) -> None:
    """NODE[N]=DOMAIN (or DOMAIN/MAC): ethN of node on the domain's bridge."""
    domain = value.split("/")[0].strip()
    if "/" in value:
        out.unsupported.append(out.at(number, f"{node}[{index}]: a MAC address after / is "
                                      "not supported"))
    if not domain:
        out.problems.append(out.at(number, f"{node}[{index}]: no collision domain named"))
        return
    if domain not in domains:
        out.lines[("bridges", len(domains))] = number
        domains[domain] = {"name": domain, "members": [], "interfaces": {}, "addresses": {}}
    bridge = domains[domain]
    if node in bridge["members"]:
        out.problems.append(out.at(number, f"{node} is on collision domain {domain} twice"))
        return
    bridge["members"].append(node)
    bridge["interfaces"][node] = f"eth{index}"
    bridge["addresses"][node] = None  # the startup file addresses it, as in Kathara


def _startup(out: Imported, folder: str, node: str) -> None:
    """NODE.startup runs in the node; a NODE folder (files for a container) is refused."""
    path = os.path.join(folder, f"{node}.startup")
    if os.path.islink(path):
        out.problems.append(out.at(1, f"{path} is a symbolic link; give the file itself"))
    elif os.path.isfile(path):
        out.execs.append((node, ("bash", path)))  # as Kathara runs it
    if os.path.isdir(os.path.join(folder, node)):
        out.unsupported.append(out.at(1, f"{node}/: files for the node's container are not "
                                      "copied (namespaces share the host's files)"))
