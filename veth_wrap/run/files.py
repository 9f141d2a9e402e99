"""File steps run in this process: `mkdir -p`, `tee`, `rm -rf` and `rmdir`, as a shell would.

The plan prints them as ordinary commands (the dry run runs them with `sh`); the walker runs
them here instead of forking, since a process each would cost more than the lab's own `ip`
calls. No path is opened through a symbolic link (run/nofollow.py): a link met on the way
fails the step, and the walker rolls back.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from veth_wrap.errors import CommandFailed, LinkRefused
from veth_wrap.run import nofollow

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


# argv heads, exactly as the plan writes them, and what each does
BUILTINS: dict[tuple[str, ...], Callable[[list[str], Optional[str]], None]] = {
    ("mkdir", "-p", "--"): _mkdir,
    ("tee", "--"): _tee,
    ("rm", "-rf", "--"): _rm,
    ("rmdir", "--ignore-fail-on-non-empty", "--"): _rmdir,
}


def builtin(argv: Sequence[str]) -> Optional[tuple[int, Callable]]:
    """(length of the head, function) when argv is a file step run here, else None."""
    for head, func in BUILTINS.items():
        if tuple(argv[: len(head)]) == head:
            return len(head), func
    return None


def run_builtin(argv: Sequence[str], stdin: Optional[str]) -> str:
    """Run a file step; returns what the program would print (tee echoes its input)."""
    size, func = builtin(argv)
    try:
        func(list(argv[size:]), stdin)
    except OSError as exc:
        where = exc.filename or argv[-1]
        raise CommandFailed(argv, 1, f"{argv[0]}: {where}: {exc.strerror}") from None
    except LinkRefused as exc:
        raise CommandFailed(argv, 1, f"{argv[0]}: {exc.path}: is a symbolic link, not followed"
                            ) from None
    return (stdin or "") if argv[0] == "tee" else ""
