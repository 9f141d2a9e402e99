"""A step as the process that runs it: its command line, what it reads on stdin, and the
shell text a dry run prints for it.

A step of one op runs as `PROGRAM [-n NS] WORDS`; a step of several ops (or a rollback's,
which goes on past a failing line) as `PROGRAM [-n NS] [-force] -batch -`, one line an op.
A step whose ops read the kernel back asks for JSON (`-j -d`): its other lines print nothing.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Optional

from veth_wrap.steps import READ_KINDS, Kind, Op, Plan, Step

# kinds whose words run inside op.netns: from another namespace's step, through `netns exec`
ENTERS = frozenset({Kind.MARK_NETNS})


def words(op: Op, netns: Optional[str] = None) -> tuple[str, ...]:
    """The op's words in a step of netns: an op that acts inside another namespace enters
    it (`netns exec NS ip WORDS`)."""
    if op.kind in ENTERS and op.netns != netns:
        return ("netns", "exec", op.netns, "ip") + op.args
    return op.args


def line(op: Op, netns: Optional[str] = None) -> str:
    """The op as a line of `ip -batch` in a step of netns; a word with spaces (a tc bytecode)
    or none (an alias cleared) gets -batch's quotes."""
    return " ".join(f'"{word}"' if " " in word or not word else word
                    for word in words(op, netns))


def batched(step: Step, force: bool = False) -> bool:
    """True when the step's ops go to one process on stdin (always so with force)."""
    return len(step.ops) > 1 or force


def reads(step: Step) -> bool:
    """True when some of its ops read the kernel back: the process prints their JSON."""
    return any(op.kind in READ_KINDS for op in step.ops)


def argv(step: Step, force: bool = False) -> tuple[str, ...]:
    """The command line that runs step; force: go on past a failing line (a rollback)."""
    head = (step.program,) + (("-n", step.netns) if step.netns else ())
    head += ("-j", "-d") if reads(step) else ()
    if not batched(step, force):
        return head + words(step.ops[0], step.netns)
    return head + (("-force",) if force else ()) + ("-batch", "-")


def stdin(step: Step, force: bool = False) -> Optional[str]:
    """What the step's process reads: its batch lines, or the step's input."""
    if step.input is not None:
        return step.input
    return "".join(line(op, step.netns) + "\n" for op in step.ops) \
        if batched(step, force) else None


def changes(step: Step) -> Optional[Step]:
    """The step without its read-back ops (None when it only reads)."""
    ops = tuple(op for op in step.ops if op.kind not in READ_KINDS)
    if len(ops) == len(step.ops):
        return step
    return dataclasses.replace(step, ops=ops) if ops else None


def shell(step: Step) -> list[str]:
    """The step as shell lines, every word quoted, ready for `sh -e`.

    Read-back lines are left out: the dry run shows what changes the kernel.
    """
    kept = changes(step)
    if kept is not step:
        return shell(kept) if kept else []
    lines = [f"# {step.comment}"] if step.comment else []
    command = " ".join(shlex.quote(word) for word in argv(step))
    if step.input is not None:
        return lines + [f"{command} <<'EOF'", *step.input.splitlines(), "EOF"]
    if not batched(step):
        return lines + [command]
    return lines + [f"{command} <<'EOF'", *(line(op, step.netns) for op in step.ops), "EOF"]


def script(plan: Plan, header: str = "") -> list[str]:
    """The steps of plan as a shell script for `sh -e`, after its header and what the plan
    says happens first (as comments)."""
    lines = [f"# {header}"] if header else []
    lines += [f"# {text}" for text in plan.before()]
    for step in plan.steps:
        lines.extend(shell(step))
    return lines
