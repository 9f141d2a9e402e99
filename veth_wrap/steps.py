"""The plan: ordered steps, each an argv (or an `ip -batch` of lines) with how to undo it."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Optional

# `ip -batch`es whose lines each fork an `ip` into a namespace, run at once. Entering a
# namespace takes kernel locks, so two cores get more from four such batches than from two.
BATCHES_AT_ONCE = 4
PARALLEL_FROM = 16  # namespaces: below this a second process costs more than it saves
# The group of steps that change no kernel state and need none (a lab's hosts files): the
# walker may run them, in their order, beside the first wave of steps that run at once.
BESIDE = "beside"


def spread(items: list, parts: int = BATCHES_AT_ONCE) -> list[list]:
    """items in up to `parts` consecutive runs of near-equal length (none empty)."""
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for index in range(parts):
        end = start + size + (index < extra)
        if end > start:
            runs.append(items[start:end])
        start = end
    return runs


Key = tuple  # ("netns", NS) or ("link", NS, IFNAME): an object a step creates


@dataclass(frozen=True)
class Op:
    """One `ip` (or `tc`) command, as the words after the global options.

    `creates` names the objects it makes; `gone_with` names objects whose removal undoes it
    too, so that rollback skips an undo that deleting a namespace or link already did.
    """

    args: tuple[str, ...]
    undo: tuple[str, ...] = ()
    undo_netns: Optional[str] = None
    creates: tuple[Key, ...] = ()
    gone_with: frozenset = frozenset()
    undo_program: str = "ip"  # `tc` for an impairment, `rm` or `rmdir` for a file step
    read: tuple = ()  # a read-back line: what its JSON says, e.g. ("links", NS); changes nothing

    def line(self) -> str:
        """The op as a batch line; a word with spaces (a tc bytecode) or none (an alias
        cleared) gets -batch's quotes."""
        return " ".join(f'"{word}"' if " " in word or not word else word for word in self.args)


@dataclass(frozen=True)
class Step:
    """Ops that run in one process: `ip [-n NS] WORDS`, or `ip [-n NS] -batch -` for several."""

    ops: tuple[Op, ...]
    netns: Optional[str] = None
    program: str = "ip"
    comment: str = ""
    force: bool = False
    group: str = ""  # steps sharing a non-empty group are independent of each other
    input: Optional[str] = None  # what a lone op reads on stdin (a file's content for `tee`)

    @property
    def batched(self) -> bool:
        """True when the ops go to one process on stdin."""
        return len(self.ops) > 1 or self.force

    @property
    def reads(self) -> bool:
        """True when some of its lines read the kernel back: the batch prints their JSON."""
        return any(op.read for op in self.ops)

    def argv(self) -> tuple[str, ...]:
        """The command line that runs this step."""
        head = (self.program,) + (("-n", self.netns) if self.netns else ())
        head += ("-j", "-d") if self.reads else ()  # other lines print nothing either way
        if not self.batched:
            return head + self.ops[0].args
        return head + (("-force",) if self.force else ()) + ("-batch", "-")

    def stdin(self) -> Optional[str]:
        """What the step feeds to the process: its batch lines, or its input."""
        if self.input is not None:
            return self.input
        return "".join(op.line() + "\n" for op in self.ops) if self.batched else None

    def changes(self) -> Optional[Step]:
        """The step without its read-back lines (None when it only reads)."""
        ops = tuple(op for op in self.ops if not op.read)
        if len(ops) == len(self.ops):
            return self
        return dataclasses.replace(self, ops=ops) if ops else None

    def script(self) -> list[str]:
        """The step as shell lines, every word quoted, ready for `sh -e`.

        Read-back lines are left out: the script shows what changes the kernel.
        """
        step = self.changes()
        if step is not self:
            return step.script() if step else []
        lines = [f"# {self.comment}"] if self.comment else []
        command = " ".join(shlex.quote(word) for word in self.argv())
        if self.input is not None:
            return lines + [f"{command} <<'EOF'", *self.input.splitlines(), "EOF"]
        if not self.batched:
            return lines + [command]
        return lines + [f"{command} <<'EOF'", *(op.line() for op in self.ops), "EOF"]


@dataclass
class Plan:
    """An ordered list of steps, and notes on what needed no step."""

    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the user should know first

    def add(self, ops: Iterable[Op], netns: Optional[str] = None, comment: str = "",
            program: str = "ip", group: str = "") -> None:
        """Append a step made of ops, if there are any."""
        ops = tuple(ops)
        if ops:
            self.steps.append(Step(ops, netns, program, comment, group=group))

    @property
    def empty(self) -> bool:
        """True when nothing needs doing."""
        return not self.steps

    def op_count(self) -> int:
        """How many commands the plan runs, batched or not."""
        return sum(len(step.ops) for step in self.steps)

    def script(self, header: str = "") -> list[str]:
        """The whole plan as a shell script for `sh -e`."""
        lines = [f"# {header}"] if header else []
        for step in self.steps:
            lines.extend(step.script())
        return lines
