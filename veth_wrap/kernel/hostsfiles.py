"""Read /etc/netns/NS/hosts files, and the service log directories, as they are now."""

from __future__ import annotations

from typing import Iterable, Optional

from veth_wrap.errors import LinkRefused
from veth_wrap.model.procfacts import LOG_ROOT, NETNS_ETC, HostsFile, hosts_mark, hosts_path
from veth_wrap.run import nofollow


def read(names: Iterable[str]) -> dict[str, HostsFile]:
    """Each namespace's hosts file (absent ones too)."""
    return {name: read_one(name) for name in dict.fromkeys(names)}


def read_one(name: str) -> HostsFile:
    """One namespace's hosts file: its content, whose it is, and what else is beside it.

    A symbolic link at the folder or the file (or above them) is recorded, never followed.
    """
    try:
        entries = nofollow.listdir(f"{NETNS_ETC}/{name}")
    except LinkRefused as exc:
        return HostsFile(name, link=exc.path)
    if entries is None:
        return HostsFile(name)
    others = tuple(entry for entry in entries if entry != "hosts")
    try:
        content = nofollow.read_text(hosts_path(name))
    except LinkRefused as exc:
        return HostsFile(name, exists=True, dir_exists=True, others=others, link=exc.path)
    except OSError:  # a folder or a pipe where the file goes: not vethwrap's
        return HostsFile(name, dir_exists=True, exists=True, others=others)
    if content is None:
        return HostsFile(name, dir_exists=True, others=others)
    first = content.split("\n", 1)[0]
    return HostsFile(name, content, True, True, hosts_mark(first), others)


def marked(lab: Optional[str] = None) -> list[HostsFile]:
    """Every hosts file vethwrap wrote (of one lab, when given), found from the files alone."""
    found = [read_one(name) for name in _entries(NETNS_ETC)]
    return [f for f in found if f.ours and (lab is None or f.mark.lab == lab)]


def log_labs() -> list[str]:
    """The labs that have service logs under /run/vethwrap/logs."""
    return _entries(LOG_ROOT)


def _entries(folder: str) -> list[str]:
    try:
        return nofollow.listdir(folder) or []
    except (LinkRefused, OSError):
        return []


def present(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the paths that are there, the symbolic links met on the way to the others)."""
    found, links = [], []
    for path in dict.fromkeys(paths):
        try:
            if nofollow.exists(path):
                found.append(path)
        except LinkRefused as exc:
            links.append(exc.path)
    return found, links
