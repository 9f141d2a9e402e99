"""Consecutive `ip` steps run as one process: a root `ip -batch` that forks into namespaces.

Each step started through `sh` forks this Python process (several milliseconds); a line
`netns exec NS ip -batch FILE` of a root batch forks a small `ip` instead. So the walker
hands a run of steps to one root batch: a root step's lines go in as they are, and a step
inside a namespace becomes one such line, whose FILE is an anonymous memory file (memfd)
holding the step's own batch. Lines run in order and a batch stops at its first failure,
so the failing line tells which steps ran, and the failing step's own error (its line
number inside FILE) tells how far it got: rollback stays exact. The dry run prints the
steps themselves (`ip -n NS -batch -`), which do the same.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from veth_wrap.errors import CommandFailed, failed_lines
from veth_wrap.run import commands
from veth_wrap.run.commands import batched, line
from veth_wrap.steps import Op, Step

MAX_FILES = 100  # memory files one root batch holds open; four run at once (fd limit: 1,024)


def fusable(step: Step) -> bool:
    """True for a step the root batch can carry: `ip`, stdin its own lines."""
    return step.program == "ip" and step.input is None


@dataclass
class _Part:
    step: Step
    first: int  # its first line in the root batch, from 1
    path: str = ""  # the memory file a step inside a namespace reads its batch from


@dataclass
class Fused:
    """Steps as one root `ip -batch`: build with add(), run argv()/stdin(), then close()."""

    parts: list[_Part] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    def add(self, step: Step) -> None:
        """Append a fusable step."""
        part = _Part(step, len(self.lines) + 1)
        if step.netns is None:
            self.lines += [line(op) for op in step.ops]  # root lines
        else:
            flags = " -j -d" if commands.reads(step) else ""
            if batched(step):
                part.path = self._memory_file(step.netns, commands.stdin(step) or "")
                self.lines.append(f"netns exec {step.netns} ip{flags} -batch {part.path}")
            else:
                only = line(step.ops[0], step.netns)
                self.lines.append(f"netns exec {step.netns} ip{flags} {only}")
        self.parts.append(part)

    def _memory_file(self, name: str, text: str) -> str:
        # Inherited (not close-on-exec): the root batch and each `ip` it forks hold it, so
        # a batch whose vethwrap was killed still finishes every step it started with,
        # marks included, instead of stopping at an unmarked namespace. /dev/fd/N opens
        # the file anew: the child reads from the start.
        fd = os.memfd_create(f"vethwrap-{name}", 0)
        self.fds.append(fd)
        os.write(fd, text.encode())
        return f"/dev/fd/{fd}"

    def argv(self) -> tuple[str, ...]:
        """The root batch's command line: JSON when a root line reads."""
        reads = any(commands.reads(p.step) and p.step.netns is None for p in self.parts)
        return ("ip",) + (("-j", "-d") if reads else ()) + ("-batch", "-")

    def stdin(self) -> str:
        """The root batch's lines."""
        return "".join(line + "\n" for line in self.lines)

    def ops(self) -> tuple[Op, ...]:
        """Every op of every step, in the order they run (and print)."""
        return tuple(op for part in self.parts for op in part.step.ops)

    def close(self) -> None:
        """Close the memory files."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def failure(self, error: CommandFailed) -> tuple[list[Op], CommandFailed]:
        """What ran before the root batch failed, and the failing step's own error.

        Without a failing line it ran no line (ip refused its options, say), unless it
        was killed: then nothing tells how far it got, and every op counts as done.
        """
        failed = failed_lines(error.stderr)
        if not failed:
            return (list(self.ops()) if error.killed else []), error
        index = max(i for i, part in enumerate(self.parts) if part.first <= failed[-1])
        part = self.parts[index]
        done = [op for earlier in self.parts[:index] for op in earlier.step.ops]
        own = _own_error(part, error, failed[-1])
        # a step's own batch names its failing line; without one it never got to run (its
        # namespace was gone, or a lone op failed)
        count = (own.lines_done if batched(part.step) else None) or 0
        return done + list(part.step.ops[:count]), own


_ROOT_FAILED = re.compile(r"^Command failed -:\d+$", re.MULTILINE)
_FILE_FAILED = re.compile(r"^Command failed (?!-:)\S+:(\d+)$", re.MULTILINE)  # a step's own


def _own_error(part: _Part, error: CommandFailed, line: int) -> CommandFailed:
    """The error as the step would have raised it run alone: its argv, its line number."""
    stderr = _ROOT_FAILED.sub("", error.stderr).strip()
    if part.step.netns is None:
        local = line - part.first + 1
        stderr += f"\nCommand failed -:{local}" if batched(part.step) else ""
    elif part.path:
        stderr = _FILE_FAILED.sub(r"Command failed -:\1", stderr)
    return CommandFailed(commands.argv(part.step), error.returncode, stderr,
                         commands.stdin(part.step) or "")


def runs(steps: list[Step]) -> list[list[Step]]:
    """steps cut into runs for one process each: consecutive fusable steps go together (up
    to MAX_FILES batches inside namespaces), any other step runs alone."""
    out: list[list[Step]] = []
    files = 0
    for step in steps:
        needs = step.netns is not None and batched(step)  # a memory file of its own
        joins = out and fusable(step) and fusable(out[-1][-1]) and (files < MAX_FILES
                                                                    or not needs)
        if not joins:
            out.append([])
            files = 0
        out[-1].append(step)
        files += needs
    return out


def fused(steps: list[Step]) -> Fused:
    """The root batch of a run of fusable steps (close() it after running)."""
    batch = Fused()
    for step in steps:
        batch.add(step)
    return batch
