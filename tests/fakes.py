"""Fakes for unit tests: a runner that records calls and answers from a responder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from veth_wrap.errors import CommandFailed
from veth_wrap.run.runner import Result, listed_netns


@dataclass
class RecordingRunner:
    """A fake runner for unit tests: records calls and answers from a responder."""

    responder: Callable[[tuple[str, ...], str | None], Result | None] | None = None
    calls: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)

    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result:
        """Record the call and answer it (empty success by default)."""
        key = tuple(argv)
        self.calls.append((key, stdin))
        result = self.responder(key, stdin) if self.responder else None
        result = result or Result(key, "", "", 0)
        if check and result.returncode != 0:
            raise CommandFailed(key, result.returncode, result.stderr, stdin or "")
        return result

    def run_file(self, kind, argv: Sequence[str], stdin: str | None = None) -> Result:
        """A file step, recorded and answered as a command."""
        return self.run(argv, stdin)

    def netns(self, bound: bool = False) -> list[str]:
        """The named namespaces, from the answer to `ip -j netns list` (recorded as such)."""
        return listed_netns(self)


@dataclass
class Tape:
    """Runs through a real runner and writes each call down, to replay it later."""

    inner: object
    calls: list[tuple[tuple[str, ...], str | None, Result]] = field(default_factory=list)

    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result:
        """Run for real, record, then judge the exit status as the inner runner would."""
        result = self.inner.run(argv, stdin=stdin, check=False)
        self.calls.append((tuple(argv), stdin, result))
        if check and result.returncode != 0:
            raise CommandFailed(tuple(argv), result.returncode, result.stderr, stdin or "")
        return result

    def run_file(self, kind, argv: Sequence[str], stdin: str | None = None) -> Result:
        return self.inner.run_file(kind, argv, stdin)

    def netns(self, bound: bool = False) -> list[str]:
        """Read as a recorded runner reads it, so that a replay answers the same call."""
        return listed_netns(self)

    def replayer(self) -> RecordingRunner:
        """A fake runner answering each recorded call with what it printed, in order."""
        queue: dict[tuple, list[Result]] = {}
        for argv, stdin, result in self.calls:
            queue.setdefault((argv, stdin), []).append(result)

        def answer(argv, stdin):
            pending = queue.get((argv, stdin))
            assert pending, f"not recorded: {argv} {stdin!r}"
            return pending.pop(0) if len(pending) > 1 else pending[0]

        return RecordingRunner(answer)
