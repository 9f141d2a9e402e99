"""One lock for every change vethwrap makes, where the kernel cannot arbitrate alone."""

from __future__ import annotations

import fcntl
import os
import stat
from contextlib import contextmanager
from typing import Iterator

from veth_wrap.errors import LinkRefused, PreflightError
from veth_wrap.run import nofollow

LOCK_DIR = "/run/vethwrap"


def open_dir(path: str) -> int:
    """Open (making it if needed) a root-owned directory, refusing symlinks and strangers."""
    fd = nofollow.open_dir(path, create=0o700)
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise PreflightError(f"{path} is not owned by this user or is writable by others",
                             f"remove it (rm -r {path}) and run again")
    return fd


@contextmanager
def locked(path: str = LOCK_DIR) -> Iterator[None]:
    """Hold the exclusive lock while the block runs."""
    try:
        dir_fd = open_dir(path)
    except OSError as exc:
        raise PreflightError(f"cannot use {path}: {exc.strerror}",
                             "run as root; see 'vethwrap doctor'") from None
    try:
        fd = os.open("lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
    except OSError as exc:
        if nofollow.is_link(dir_fd, "lock"):
            raise LinkRefused(f"{path}/lock") from None
        raise PreflightError(f"cannot open {path}/lock: {exc.strerror}",
                             f"remove it (rm {path}/lock) and run again") from None
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
