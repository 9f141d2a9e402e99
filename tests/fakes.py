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
