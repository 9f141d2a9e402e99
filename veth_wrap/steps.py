"""The plan: what to change, as ordered steps of ops, each of a kind, with its argv and undo.

A plan says what; how it runs (processes, at once or in order) is run/schedule's business.
Code that needs to know what an op does asks its kind, never its words.
"""

from __future__ import annotations

import dataclasses
import enum
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Optional


class Kind(enum.Enum):
    """What an op does."""

    ADD_NETNS = "add-netns"
    DEL_NETNS = "del-netns"
    MARK_NETNS = "mark-netns"  # lo up with the lab's alias, from the root namespace
    SET_LO = "set-lo"  # lo's address, state or alias inside its namespace
    SET_SYSCTL = "set-sysctl"
    ADD_VETH = "add-veth"
    ADD_BRIDGE = "add-bridge"
    ADD_VXLAN = "add-vxlan"
    DEL_LINK = "del-link"
    SET_LINK = "set-link"  # state, alias or master of an interface
    SET_MTU = "set-mtu"
    SET_MAC = "set-mac"
    ADD_ADDRESS = "add-address"
    DEL_ADDRESS = "del-address"
    ADD_ROUTE = "add-route"
    DEL_ROUTE = "del-route"
    ADD_FLOOD = "add-flood"  # a VXLAN flood entry
    SET_ROOT_QDISC = "set-root-qdisc"
    DEL_ROOT_QDISC = "del-root-qdisc"
    ADD_CLSACT = "add-clsact"
    DEL_CLSACT = "del-clsact"
    SET_LOSS_FILTER = "set-loss-filter"
    START_GATEWAY = "start-gateway"  # an uplink's pasta, in the host's namespace
    ADD_FIREWALL = "add-firewall"  # a partition's nft table
    DEL_FIREWALL = "del-firewall"
    FIX = "fix"  # a diagnosis' fix, as it printed it
    MAKE_DIRS = "make-dirs"
    WRITE_NAME_FILE = "write-name-file"
    REMOVE_FILES = "remove-files"
    REMOVE_DIRS = "remove-dirs"
    READ_LINKS = "read-links"  # read back: a namespace's links and addresses
    READ_ROUTE = "read-route"  # read back: the route a hop takes
    UNDO = "undo"  # a line of a rollback


FILE_KINDS = frozenset({Kind.MAKE_DIRS, Kind.WRITE_NAME_FILE, Kind.REMOVE_FILES,
                        Kind.REMOVE_DIRS})  # done by vethwrap itself, not by a program
READ_KINDS = frozenset({Kind.READ_LINKS, Kind.READ_ROUTE})

Key = tuple  # ("netns", NS) or ("link", NS, IFNAME): an object a step creates


@dataclass(frozen=True)
class Op:
    """One command of a kind, as the words after the program and its global options.

    target names what it acts on (a namespace, an interface, a path); netns, the namespace
    it changes when that is not its step's own (a `netns add`, a veth's far end). `creates`
    names the objects it makes; `gone_with` names objects whose removal undoes it too, so
    that rollback skips an undo that deleting a namespace or link already did.
    """

    kind: Kind
    args: tuple[str, ...]
    undo: tuple[str, ...] = ()
    undo_netns: Optional[str] = None
    creates: tuple[Key, ...] = ()
    gone_with: frozenset = frozenset()
    undo_program: str = "ip"  # `tc` for an impairment, `rm` or `rmdir` for a file step
    target: str = ""
    netns: Optional[str] = None
    undo_kind: Kind = Kind.UNDO

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):  # Op(words) of old: say so at once
            raise TypeError(f"Op needs a Kind first, got {self.kind!r}")

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
    # steps sharing a non-empty label change disjoint objects: any order builds the same
    independent: str = ""
    input: Optional[str] = None  # what a lone op reads on stdin (a file's content for `tee`)

    @property
    def kind(self) -> Kind:
        """The kind of its first op (a file step holds one op)."""
        return self.ops[0].kind

    @property
    def batched(self) -> bool:
        """True when the ops go to one process on stdin."""
        return len(self.ops) > 1 or self.force

    @property
    def reads(self) -> bool:
        """True when some of its lines read the kernel back: the batch prints their JSON."""
        return any(op.kind in READ_KINDS for op in self.ops)

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
        ops = tuple(op for op in self.ops if op.kind not in READ_KINDS)
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
            program: str = "ip", independent: str = "") -> None:
        """Append a step made of ops, if there are any."""
        ops = tuple(ops)
        if ops:
            self.steps.append(Step(ops, netns, program, comment, independent=independent))

    @property
    def empty(self) -> bool:
        """True when nothing needs doing."""
        return not self.steps

    def targets(self, kind: Kind) -> list[str]:
        """What the plan's ops of a kind act on, in order (the namespaces it deletes, say)."""
        return [op.target for step in self.steps for op in step.ops if op.kind is kind]

    def op_count(self) -> int:
        """How many commands the plan runs, batched or not."""
        return sum(len(step.ops) for step in self.steps)

    def script(self, header: str = "") -> list[str]:
        """The whole plan as a shell script for `sh -e`."""
        lines = [f"# {header}"] if header else []
        for step in self.steps:
            lines.extend(step.script())
        return lines


@dataclass(frozen=True)
class Reads:
    """What verification reads once the plan ran: links by namespace, routes by hop.

    The schedule folds them into the plan's last changes where that saves a process.
    """

    spaces: tuple[str, ...] = ()
    hops: tuple[tuple[str, str], ...] = ()  # (source namespace, address)
