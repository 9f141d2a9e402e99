"""A runner that counts the processes another one starts (a diagnosis reports its cost)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Sequence

from veth_wrap.run.runner import Result, Runner
from veth_wrap.steps import Kind


@dataclass
class Counted:
    """Runs through inner and counts each command (threads may share it)."""

    inner: Runner
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, started: int = 1) -> None:
        """Count processes started elsewhere (a ping run by another layer)."""
        with self._lock:
            self.count += started

    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result:
        """Count, then run."""
        self.add()
        return self.inner.run(argv, stdin=stdin, check=check)

    def run_file(self, kind: Kind, argv: Sequence[str], stdin: str | None = None) -> Result:
        """A file step: no process, so not counted."""
        return self.inner.run_file(kind, argv, stdin)

    def netns(self, bound: bool = False) -> list[str]:
        """The inner runner's list of named namespaces."""
        return self.inner.netns(bound)
