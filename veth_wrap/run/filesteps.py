"""File steps run in this process: `mkdir -p`, `tee`, `rm -rf` and `rmdir`, as a shell would.

The plan prints them as ordinary commands (the dry run runs them with `sh`); the walker runs
them here, as their kind says, instead of forking, since a process each would cost more than
the lab's own `ip` calls. No path is opened through a symbolic link (run/nofollow.py): a link
met on the way fails the step, and the walker rolls back.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from veth_wrap.errors import CommandFailed, LinkRefused
from veth_wrap.run import nofollow
from veth_wrap.steps import Kind

HOSTS_MODE = 0o644


def _mkdir(paths: list[str], _stdin: Optional[str]) -> None:
    for path in paths:
        nofollow.makedirs(path, 0o755)


def _tee(paths: list[str], stdin: Optional[str]) -> None:
    data = (stdin or "").encode()
    for path in paths:
        nofollow.write(path, data, HOSTS_MODE)


def _rm(paths: list[str], _stdin: Optional[str]) -> None:
    for path in paths:
        nofollow.remove(path)


def _rmdir(paths: list[str], _stdin: Optional[str]) -> None:
    for path in paths:
        nofollow.rmdir(path)


# what each kind of file step does, given the paths after its `--`
BUILTINS: dict[Kind, Callable[[list[str], Optional[str]], None]] = {
    Kind.MAKE_DIRS: _mkdir,
    Kind.WRITE_NAME_FILE: _tee,
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
    except LinkRefused as exc:
        raise CommandFailed(argv, 1, f"{argv[0]}: {exc.path}: is a symbolic link, not followed"
                            ) from None
    return (stdin or "") if kind is Kind.WRITE_NAME_FILE else ""
