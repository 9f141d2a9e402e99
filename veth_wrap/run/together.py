"""Which consecutive steps of a plan change disjoint objects, so that any order of them builds
the same: the schedule may run those at once.

A step's footprint is read off its ops' kinds and namespaces, never their words: the
namespaces it changes (its own, or an op's netns) and the objects it creates in another
namespace (a veth's far end, named in `creates`), which no other step touches. Only kinds
whose whole effect those say are counted: deleting a link takes its peer along, deleting a
namespace takes the veths into it, a fix or a gateway may reach anywhere; a step with such
an op is never run beside another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.steps import Kind, Step

CONFINED = frozenset({
    Kind.ADD_NETNS, Kind.MARK_NETNS, Kind.SET_LO, Kind.SET_SYSCTL, Kind.ADD_VETH,
    Kind.ADD_BRIDGE, Kind.SET_LINK, Kind.SET_MTU, Kind.SET_MAC, Kind.ADD_ADDRESS,
    Kind.DEL_ADDRESS, Kind.ADD_ROUTE, Kind.DEL_ROUTE, Kind.SET_ROOT_QDISC, Kind.DEL_ROOT_QDISC,
    Kind.ADD_CLSACT, Kind.DEL_CLSACT, Kind.SET_LOSS_FILTER, Kind.ADD_FIREWALL,
    Kind.DEL_FIREWALL})  # kinds whose effect stays in their namespace and what they create
ROOT = ("root",)  # the root namespace, as a footprint's member


@dataclass(frozen=True)
class Placed(Step):
    """A step as the schedule places it: steps sharing a non-empty group run at once."""

    group: str = ""


@dataclass
class Footprint:
    """What a unit of steps changes: namespaces, and objects it creates elsewhere."""

    spaces: set = field(default_factory=set)
    made: set = field(default_factory=set)  # ("link", NS, IFNAME) of a veth's far end
    far: set = field(default_factory=set)  # the namespaces of those ends

    def add(self, step: Step) -> None:
        """Count a step's ops in."""
        home = step.netns or ROOT
        for op in step.ops:
            far = op.netns if op.netns not in (None, step.netns) else None
            made = {key for key in op.creates if far and key[:2] == ("link", far)}
            if made and op.kind is Kind.ADD_VETH:
                self.spaces.add(home)
                self.made |= made
                self.far |= {key[1] for key in made}
            else:
                self.spaces.add(op.netns or home)

    def apart(self, other: Footprint) -> bool:
        """True when neither changes what the other does."""
        return not (self.spaces & other.spaces or self.spaces & other.far
                    or other.spaces & self.far or self.made & other.made)

    def join(self, other: Footprint) -> None:
        """Count another footprint in: apart from the sum is apart from each."""
        self.spaces |= other.spaces
        self.made |= other.made
        self.far |= other.far


def _confined(step: Step) -> bool:
    return step.program in ("ip", "tc") and all(op.kind in CONFINED for op in step.ops)


def units(steps: list[Step]) -> list[list[Step]]:
    """steps cut where a group may be cut: a root step that only adds a namespace stays with
    that namespace's step after it."""
    out: list[list[Step]] = []
    for step in steps:
        last = out[-1][-1] if out else None
        if last is not None and last.netns is None and step.netns is not None \
                and all(op.kind is Kind.ADD_NETNS and op.netns == step.netns for op in last.ops):
            out[-1].append(step)
        else:
            out.append([step])
    return out


def grouped(steps: list[Step]) -> list[Placed]:
    """steps as Placed, each run of two or more consecutive units that are pairwise apart
    sharing a group."""
    runs: list[list[list[Step]]] = []
    total: Optional[Footprint] = None  # the last run's footprints, summed (None: not known)
    for unit in units(steps):
        foot = _footprint(unit)
        if foot and total and total.apart(foot):
            runs[-1].append(unit)
            total.join(foot)
        else:
            runs.append([unit])
            total = foot and Footprint(set(foot.spaces), set(foot.made), set(foot.far))
    placed: list[Placed] = []
    for number, run in enumerate(runs):
        group = f"apart-{number}" if len(run) > 1 else ""
        placed += [place(step, group) for unit in run for step in unit]
    return placed


def _footprint(unit: list[Step]) -> Optional[Footprint]:
    """The unit's footprint, None when some op's whole effect is not known."""
    if not all(_confined(step) for step in unit):
        return None
    foot = Footprint()
    for step in unit:
        foot.add(step)
    return foot


def place(step: Step, group: str = "") -> Placed:
    """step as Placed in group (a Placed step keeps its own unless group is given)."""
    if isinstance(step, Placed) and not group:
        return step
    return Placed(step.ops, step.netns, step.program, step.comment, input=step.input,
                  group=group)
