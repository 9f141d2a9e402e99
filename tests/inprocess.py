"""vethwrap's command line run in this process: `python -m veth_wrap` without the process.

The same entry point (`veth_wrap.cli.app.run`, so the same mapping of errors to exit codes
and one-line messages), stdout and stderr captured apart, NO_COLOR and the terminal width the
subprocess tests set. What the CLI keeps between calls in module globals is reset before each.

A call that needs a process boundary stays a subprocess (the `cli` fixture): `exec`, which
replaces the process; `logs --follow`; signals and kill -9; services that must outlive the
command that started them; another user; ssh; tty detection.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

ENV = {"NO_COLOR": "1", "COLUMNS": "200"}  # as the `cli` fixture gives its subprocess
REPLACES_PROCESS = {"exec"}  # os.execv: it would replace the test run itself


@dataclass(frozen=True)
class Result:
    """What a run left: its exit code and what it wrote to stdout and stderr."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:
        """The exit code, by subprocess.CompletedProcess's name for it."""
        return self.exit_code


def vethwrap(*args: str, input: Optional[str] = None, env: Optional[dict] = None) -> Result:
    """Run `vethwrap ARGS` in this process, as `python -m veth_wrap ARGS` would."""
    from typer.testing import CliRunner

    command = next((word for word in args if not word.startswith("-")), None)
    assert command not in REPLACES_PROCESS, f"{command} replaces the process: use the cli fixture"
    _fresh()
    with CliRunner().isolation(env={**ENV, **(env or {})}) as (out, err, _), \
            _stdin(input), _argv(["vethwrap", *args]), _click_width():
        code = _exit_code()
        sys.stdout.flush()
        sys.stderr.flush()
        return Result(code, out.getvalue().decode(), err.getvalue().decode())


def _exit_code() -> int:
    from veth_wrap.cli.app import run

    try:
        run()
    except SystemExit as done:
        code = done.code
        return 0 if code is None else int(code) if isinstance(code, int) else 1
    raise AssertionError("vethwrap's run() returned without an exit status")


def _fresh() -> None:
    """Forget what a previous run left in the CLI's module globals."""
    from veth_wrap.cli import app, output

    app._debug["on"] = False  # --debug
    output.QUIET["on"] = False  # -q
    output._consoles.clear()  # a rich console takes its width and colours when made


@contextmanager
def _stdin(text: Optional[str]) -> Iterator[None]:
    """stdin as a pipe fed with text, as subprocess's input= does (a lab file is read from
    the descriptor); the runner's own stdin when no text is given."""
    if text is None:
        yield
        return
    read_end, write_end = os.pipe()
    feeder = threading.Thread(target=_feed, args=(write_end, text.encode()), daemon=True)
    feeder.start()
    saved = sys.stdin
    with os.fdopen(read_end) as pipe:
        sys.stdin = pipe
        try:
            yield
        finally:
            sys.stdin = saved
    feeder.join(timeout=60)


def _feed(fd: int, data: bytes) -> None:
    """Write data to the pipe and close it; a reader that stopped early ends the feed."""
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except BrokenPipeError:
        pass


@contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved, sys.argv = sys.argv, argv
    try:
        yield
    finally:
        sys.argv = saved


@contextmanager
def _click_width() -> Iterator[None]:
    """Click's help as wide as COLUMNS says, as in a process (the runner forces 80)."""
    try:
        from typer._click import formatting
    except ImportError:  # typer < 0.20 uses click's own
        from click import formatting

    saved, formatting.FORCED_WIDTH = formatting.FORCED_WIDTH, None
    try:
        yield
    finally:
        formatting.FORCED_WIDTH = saved
