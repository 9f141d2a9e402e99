"""Files under /run/vethwrap (service logs and records), named by their parts below it.

Every folder and file is reached through run/nofollow: a symbolic link planted anywhere
below /run/vethwrap is refused, never followed.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from veth_wrap.run import nofollow
from veth_wrap.run.lock import LOCK_DIR, open_dir


def _path(parts: Sequence[str]) -> str:
    return "/".join((LOCK_DIR, *parts))


def _open_at(fd: int, name: str, flags: int, where: str) -> int:
    return nofollow.open_in(fd, name, flags | os.O_CLOEXEC, where)


def open_folder(parts: Sequence[str], make: bool = False) -> Optional[int]:
    """/run/vethwrap/PART/... as a directory fd; None when absent (made 0700 when `make`)."""
    os.close(open_dir(LOCK_DIR))  # refuses a /run/vethwrap that is a link or not root's
    try:
        return nofollow.open_dir(_path(parts), create=0o700 if make else None)
    except FileNotFoundError:
        return None


def write_file(parts: Sequence[str], name: str) -> int:
    """Create /run/vethwrap/PARTS/NAME afresh (0600) for writing; its fd."""
    fd = open_folder(parts, make=True)
    try:
        return _open_at(fd, name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                        _path((*parts, name)))
    finally:
        os.close(fd)


def read_file(parts: Sequence[str], name: str) -> Optional[int]:
    """/run/vethwrap/PARTS/NAME opened for reading; None when it is not there."""
    fd = open_folder(parts)
    if fd is None:
        return None
    try:
        return _open_at(fd, name, os.O_RDONLY, _path((*parts, name)))
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


def listdir(parts: Sequence[str]) -> list[str]:
    """The names in /run/vethwrap/PARTS (none when it is absent)."""
    fd = open_folder(parts)
    if fd is None:
        return []
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def remove(parts: Sequence[str]) -> None:
    """Remove /run/vethwrap/PARTS, a file or a whole folder, without following any link."""
    if not parts:
        return
    os.close(open_dir(LOCK_DIR))
    nofollow.remove(_path(parts))


def parts_of(path: str) -> Optional[list[str]]:
    """The parts of a path below /run/vethwrap, None for a path elsewhere."""
    if not path.startswith(LOCK_DIR + "/"):
        return None
    parts = path[len(LOCK_DIR) + 1:].split("/")
    return parts if all(p and p not in (".", "..") for p in parts) else None
