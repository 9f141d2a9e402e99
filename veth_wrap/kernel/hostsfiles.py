"""Read /etc/netns/NS/hosts files, and the service log directories, as they are now."""

from __future__ import annotations

import os
from typing import Iterable, Optional

from veth_wrap.model.procfacts import LOG_ROOT, NETNS_ETC, HostsFile, hosts_mark, hosts_path
from veth_wrap.run import rundir


def read(names: Iterable[str]) -> dict[str, HostsFile]:
    """Each namespace's hosts file (absent ones too)."""
    return {name: read_one(name) for name in dict.fromkeys(names)}


def read_one(name: str) -> HostsFile:
    """One namespace's hosts file: its content, whose it is, and what else is beside it."""
    folder = f"{NETNS_ETC}/{name}"
    try:
        entries = tuple(sorted(os.listdir(folder)))
    except OSError:
        return HostsFile(name)
    others = tuple(entry for entry in entries if entry != "hosts")
    try:
        fd = os.open(hosts_path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        # absent, or a symbolic link: either way not a file vethwrap wrote
        return HostsFile(name, dir_exists=True, exists="hosts" in entries, others=others)
    with os.fdopen(fd) as f:
        content = f.read(1 << 20)
    first = content.split("\n", 1)[0]
    return HostsFile(name, content, True, True, hosts_mark(first), others)


def marked(lab: Optional[str] = None) -> list[HostsFile]:
    """Every hosts file vethwrap wrote (of one lab, when given), found from the files alone."""
    try:
        names = sorted(os.listdir(NETNS_ETC))
    except OSError:
        return []
    found = [read_one(name) for name in names]
    return [f for f in found if f.ours and (lab is None or f.mark.lab == lab)]


def log_labs() -> list[str]:
    """The labs that have service logs under /run/vethwrap/logs."""
    try:
        return rundir.listdir([LOG_ROOT.rsplit("/", 1)[1]])
    except OSError:
        return []
