"""Files under /run/vethwrap (service logs and records), reached only through directory fds.

Each folder on the way is opened relative to the one before it with O_NOFOLLOW, so a
symbolic link planted anywhere below /run/vethwrap is refused, never followed.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import Optional, Sequence

from veth_wrap.errors import LinkRefused
from veth_wrap.run.lock import LOCK_DIR, open_dir

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR)  # what O_NOFOLLOW on a link gives


def _refuse_link(fd: int, name: str, where: str) -> None:
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise LinkRefused(where)


def _open_at(fd: int, name: str, flags: int, where: str, mode: int = 0o600) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
    except OSError as exc:
        if exc.errno in LINK_ERRORS:
            _refuse_link(fd, name, where)
        raise


def open_folder(parts: Sequence[str], make: bool = False) -> Optional[int]:
    """/run/vethwrap/PART/... as a directory fd; None when absent (made 0700 when `make`)."""
    fd = open_dir(LOCK_DIR)  # refuses a /run/vethwrap that is a link or not root's
    where = LOCK_DIR
    try:
        for part in parts:
            where = f"{where}/{part}"
            if make:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                inner = _open_at(fd, part, DIR_FLAGS, where)
            except FileNotFoundError:
                os.close(fd)
                return None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_file(parts: Sequence[str], name: str) -> int:
    """Create /run/vethwrap/PARTS/NAME afresh (0600) for writing; its fd."""
    fd = open_folder(parts, make=True)
    try:
        return _open_at(fd, name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                        "/".join((LOCK_DIR, *parts, name)))
    finally:
        os.close(fd)


def read_file(parts: Sequence[str], name: str) -> Optional[int]:
    """/run/vethwrap/PARTS/NAME opened for reading; None when it is not there."""
    fd = open_folder(parts)
    if fd is None:
        return None
    try:
        return _open_at(fd, name, os.O_RDONLY, "/".join((LOCK_DIR, *parts, name)))
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
    fd = open_folder(parts[:-1])
    if fd is None:
        return
    try:
        try:
            info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(parts[-1], dir_fd=fd)  # works through fds; links inside go unfollowed
        else:
            os.unlink(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


def parts_of(path: str) -> Optional[list[str]]:
    """The parts of a path below /run/vethwrap, None for a path elsewhere."""
    if not path.startswith(LOCK_DIR + "/"):
        return None
    parts = path[len(LOCK_DIR) + 1:].split("/")
    return parts if all(p and p not in (".", "..") for p in parts) else None
