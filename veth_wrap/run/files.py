"""File steps run in this process: `mkdir -p`, `tee`, `rm -rf` and `rmdir`, as a shell would.

The plan prints them as ordinary commands (the dry run runs them with `sh`); the walker runs
them here, as their kind says, instead of forking, since a process each would cost more than
the lab's own `ip` calls. Files are written without following symbolic links.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Callable, Optional, Sequence

from veth_wrap.errors import CommandFailed
from veth_wrap.run import rundir
from veth_wrap.steps import Kind

HOSTS_MODE = 0o644


def _mkdir(paths: list[str], _stdin: Optional[str]) -> None:
    for path in paths:
        os.makedirs(path, 0o755, exist_ok=True)


def _tee(paths: list[str], stdin: Optional[str]) -> None:
    data = (stdin or "").encode()
    for path in paths:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     HOSTS_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def _rm(paths: list[str], _stdin: Optional[str]) -> None:
    for path in paths:
        parts = rundir.parts_of(path)
        if parts is not None:  # vethwrap's own files: reached through directory fds only
            rundir.remove(parts)
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _rmdir(paths: list[str], _stdin: Optional[str]) -> None:
    for path in paths:
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise


# what each kind of file step does, given the paths after its `--`
BUILTINS: dict[Kind, Callable[[list[str], Optional[str]], None]] = {
    Kind.MAKE_DIRS: _mkdir,
    Kind.WRITE_HOSTS_FILE: _tee,
    Kind.REMOVE_FILES: _rm,
    Kind.REMOVE_DIRS: _rmdir,
}


def run_builtin(kind: Kind, argv: Sequence[str], stdin: Optional[str]) -> str:
    """Run a file step of kind on the operands after argv's `--`; returns what the program
    would print (tee echoes its input)."""
    paths = list(argv[list(argv).index("--") + 1:])
    try:
        BUILTINS[kind](paths, stdin)
    except OSError as exc:
        where = exc.filename or argv[-1]
        raise CommandFailed(argv, 1, f"{argv[0]}: {where}: {exc.strerror}") from None
    except rundir.LinkRefused as exc:
        raise CommandFailed(argv, 1, f"{argv[0]}: {exc.message}") from None
    return (stdin or "") if kind is Kind.WRITE_HOSTS_FILE else ""
