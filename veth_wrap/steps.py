"""The plan: what to change, as ordered steps of ops, each of a kind, with its words and undo.

A plan says what; how it runs (processes, at once or in order) is run/schedule's business.
Code that needs to know what an op does asks its kind, never its words.
"""

from __future__ import annotations

import enum
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
    early: bool = False  # it starts traffic (an IPv6 end comes up): never run later than planned

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):  # Op(words) of old: say so at once
            raise TypeError(f"Op needs a Kind first, got {self.kind!r}")


@dataclass(frozen=True)
class Step:
    """Ops of one program in one namespace (None: the root), done in order; run/commands
    says how a process runs them."""

    ops: tuple[Op, ...]
    netns: Optional[str] = None
    program: str = "ip"
    comment: str = ""
    input: Optional[str] = None  # what a lone op reads on stdin (a file's content for `tee`)

    @property
    def kind(self) -> Kind:
        """The kind of its first op (a file step holds one op)."""
        return self.ops[0].kind


@dataclass
class Plan:
    """An ordered list of steps, and notes on what needed no step."""

    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the user should know first

    def add(self, ops: Iterable[Op], netns: Optional[str] = None, comment: str = "",
            program: str = "ip") -> None:
        """Append a step made of ops, if there are any."""
        ops = tuple(ops)
        if ops:
            self.steps.append(Step(ops, netns, program, comment))

    @property
    def empty(self) -> bool:
        """True when nothing needs doing."""
        return not self.steps

    def targets(self, kind: Kind) -> list[str]:
        """What the plan's ops of a kind act on, in order (the namespaces it deletes, say)."""
        return [op.target for step in self.steps for op in step.ops if op.kind is kind]

    def before(self) -> list[str]:
        """What happens before the steps, to tell a reader (none for most plans)."""
        return []

