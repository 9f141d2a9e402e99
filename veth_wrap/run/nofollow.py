"""vethwrap's own paths (/etc/netns/NS/hosts, /run/vethwrap/...), opened without following links.

Every path is opened relative to a directory fd: with openat2's RESOLVE_NO_SYMLINKS where the
kernel has it (Linux 5.6), else one component at a time with O_NOFOLLOW. A symbolic link met
on the way raises LinkRefused naming it: a link where vethwrap's file or folder should be was
put there by someone else, and following it would write, read or delete as root elsewhere.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from contextlib import contextmanager
from typing import Iterator, Optional

from veth_wrap.errors import LinkRefused

RESOLVE_NO_SYMLINKS = 0x04
SYS_OPENAT2 = 437  # the same number on every architecture (a syscall added after 5.1)
AT_FDCWD = -100
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_openat2 = None  # the libc syscall function once loaded; False when the kernel lacks openat2


def open_dir(path: str, create: Optional[int] = None) -> int:
    """An fd of directory path (absolute), made with mode create where missing (if given)."""
    if create is None:
        fd = _resolved(path, DIR_FLAGS)
        if fd is not None:
            return fd
    return _walk(path, create)


def _resolved(path: str, flags: int) -> Optional[int]:
    """openat2(path, RESOLVE_NO_SYMLINKS); None when the kernel lacks it or a link is met."""
    call = _syscall()
    if not call:
        return None
    import ctypes

    how = struct.pack("QQQ", flags, 0, RESOLVE_NO_SYMLINKS)
    fd = call(SYS_OPENAT2, AT_FDCWD, os.fsencode(path), how, len(how))
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code in (errno.ELOOP, errno.ENOSYS, errno.EPERM):
        return None  # the walk names the link (or does the work the kernel cannot)
    raise OSError(code, os.strerror(code), path)


def _syscall():
    global _openat2
    if _openat2 is None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        how = struct.pack("QQQ", DIR_FLAGS, 0, RESOLVE_NO_SYMLINKS)
        fd = libc.syscall(SYS_OPENAT2, AT_FDCWD, b"/", how, len(how))
        if fd >= 0:
            os.close(fd)
        _openat2 = libc.syscall if fd >= 0 else False
    return _openat2


def _walk(path: str, create: Optional[int]) -> int:
    """Open path one component at a time from /, never following a link."""
    parts = [part for part in path.split("/") if part]
    fd = os.open("/", DIR_FLAGS)
    try:
        for index, part in enumerate(parts):
            if create is not None:
                try:
                    os.mkdir(part, create, dir_fd=fd)
                except FileExistsError:
                    pass
            inner = open_in(fd, part, DIR_FLAGS, "/" + "/".join(parts[: index + 1]))
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_in(dir_fd: int, name: str, flags: int, shown: str, mode: int = 0o600) -> int:
    """openat(dir_fd, name, flags | O_NOFOLLOW); LinkRefused (naming shown) at a link."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and is_link(dir_fd, name):
            raise LinkRefused(shown) from None
        raise OSError(exc.errno, exc.strerror, shown) from None


def is_link(dir_fd: int, name: str) -> bool:
    """True when name, in the folder dir_fd, is a symbolic link."""
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


@contextmanager
def _parent(path: str) -> Iterator[Optional[tuple[int, str]]]:
    """(an fd of path's folder, path's last name) while the block runs; None if no folder."""
    parent, name = os.path.split(path.rstrip("/"))
    try:
        fd = open_dir(parent or "/")
    except FileNotFoundError:
        yield None
        return
    try:
        yield fd, name
    finally:
        os.close(fd)


def read_text(path: str, limit: int = 1 << 20) -> Optional[tuple[str, os.stat_result]]:
    """(the text of a file, its first limit bytes; its stat); None when it or its folder is
    absent."""
    with _parent(path) as found:
        if found is None:
            return None
        try:
            # O_NONBLOCK: a pipe planted where the file goes must not hang the run
            fd = open_in(*found, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, path)
        except FileNotFoundError:
            return None
    with os.fdopen(fd, errors="replace") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return f.read(limit), info


def listdir(path: str) -> Optional[list[str]]:
    """The entries of a folder, sorted; None when it is absent."""
    try:
        fd = open_dir(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def exists(path: str) -> bool:
    """True when path is there (a link at it, or on the way, raises LinkRefused)."""
    with _parent(path) as found:
        try:
            info = os.lstat(found[1], dir_fd=found[0]) if found else None
        except FileNotFoundError:
            info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise LinkRefused(path)
    return info is not None


def makedirs(path: str, mode: int = 0o755) -> None:
    """mkdir -p, refusing a link on the way."""
    os.close(open_dir(path, create=mode))


def write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Create or truncate a file in an existing folder and write data to it."""
    with _parent(path) as found:
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        fd = open_in(*found, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, path, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    """rm -rf path: a folder with what is in it, or a file; a link goes itself, never followed."""
    with _parent(path) as found:
        if found is not None:
            _remove_in(*found, path)


def _remove_in(dir_fd: int, name: str, shown: str) -> None:
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):  # a link too: unlink removes the link, not its target
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = open_in(dir_fd, name, DIR_FLAGS, shown)
    try:
        for entry in os.listdir(fd):
            _remove_in(fd, entry, f"{shown}/{entry}")
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def rmdir(path: str) -> None:
    """Remove an empty folder; one that is absent, not empty or a link stays."""
    with _parent(path) as found:
        try:
            if found is not None:
                os.rmdir(found[1], dir_fd=found[0])  # never follows a link: ENOTDIR
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.ENOTDIR):
                raise
