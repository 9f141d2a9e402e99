"""Read /etc/netns/NS/name files, and the service log directories, as they are now."""

from __future__ import annotations

import os
from typing import Iterable, Optional

from veth_wrap.errors import LinkRefused
from veth_wrap.kernel import state
from veth_wrap.kernel.procs import NETNS_RUN
from veth_wrap.model.procfacts import LOG_ROOT, NETNS_ETC, NameFile, hosts_path, namefile_mark
from veth_wrap.run import nofollow
from veth_wrap.run.runner import Runner


def read(names: Iterable[str]) -> dict[str, NameFile]:
    """Each namespace's name file (absent ones too)."""
    return {name: read_one(name) for name in dict.fromkeys(names)}


def read_one(name: str) -> NameFile:
    """One namespace's name file: its content, whose it is, and what else is beside it.

    A symbolic link at the folder or the file (or above them) is recorded, never followed.
    """
    try:
        entries = nofollow.listdir(f"{NETNS_ETC}/{name}")
    except LinkRefused as exc:
        return NameFile(name, link=exc.path)
    if entries is None:
        return NameFile(name)
    others = tuple(entry for entry in entries if entry != "hosts")
    try:
        found = nofollow.read_text(hosts_path(name))
    except LinkRefused as exc:
        return NameFile(name, exists=True, dir_exists=True, others=others, link=exc.path)
    except OSError:  # a folder or a pipe where the file goes: not vethwrap's
        return NameFile(name, dir_exists=True, exists=True, others=others)
    if found is None:
        return NameFile(name, dir_exists=True, others=others)
    content, info = found
    first = content.split("\n", 1)[0]
    return NameFile(name, content, True, True, namefile_mark(first), others,
                     mtime_ns=info.st_mtime_ns)


def stale(existing: Iterable[str], runner: Runner) -> list[NameFile]:
    """vethwrap's name files whose namespace is gone: deleted, or deleted and made again.

    A namespace made after its file was written (its nsfs inode is newer) is read: it has the
    file while it holds a mark of the file's lab (vethwrap made or borrowed it since).
    """
    existing = set(existing)
    found = marked()
    gone = [f for f in found if f.netns not in existing]
    newer = [f for f in found if f.netns in existing and _born(f.netns) > f.mtime_ns]
    if newer:
        facts = state.read([f.netns for f in newer], runner, routes=False)
        gone += [f for f in newer if f.netns in facts and f.mark.lab not in facts[f.netns].labs()]
    return sorted(gone, key=lambda f: f.netns)


def _born(netns: str) -> int:
    """When the namespace was made: its nsfs inode's change time (0 if unknown)."""
    try:
        return os.stat(f"{NETNS_RUN}/{netns}").st_ctime_ns
    except OSError:
        return 0


def marked(lab: Optional[str] = None) -> list[NameFile]:
    """Every name file vethwrap wrote (of one lab, when given), found from the files alone."""
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
