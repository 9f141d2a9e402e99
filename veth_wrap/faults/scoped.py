"""Faults as objects that undo themselves: what the fixture's lab.partition(), lab.impaired()
and lab.flap() return, usable with `with` or left to the test's teardown."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from veth_wrap import api
from veth_wrap.errors import UsageError
from veth_wrap.faults import agents
from veth_wrap.faults import partition as partitions
from veth_wrap.model.linkopts import LinkOpts


class Scoped:
    """A fault in place; undo() (once) at a with block's end, or at teardown."""

    def __init__(self, what: str, undo: Callable[[], None], detail: object = None,
                 healed: bool = True) -> None:
        self.what = what
        self.detail = detail  # what placing it returned (a Placed, ends read back, a Service)
        self.healed = healed  # heal finds it in the kernel (a table, a service) and undoes it
        self._undo: Optional[Callable[[], None]] = undo

    @property
    def active(self) -> bool:
        """True until it is undone."""
        return self._undo is not None

    def undo(self) -> None:
        """Remove the fault; a second call does nothing."""
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()

    def __enter__(self) -> Scoped:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.undo()
        return False  # an error in the block goes on, after the fault is gone

    def __repr__(self) -> str:
        return f"<{self.what}{'' if self.active else ' (undone)'}>"


def partition(lab: str, namespaces: Sequence[str], groups: Sequence[Sequence[str]],
              oneway: bool = False) -> Scoped:
    """Cut groups of lab apart now; undone by healing the lab's partitions."""
    placed = partitions.partition(groups, lab, oneway)
    return Scoped(f"partition of {lab}", lambda: heal(lab, namespaces), placed)


def heal(lab: str, namespaces: Sequence[str]) -> partitions.Healed:
    """Every fault of the lab undone (namespaces: the lab's, known to the caller)."""
    return partitions.heal(lab, within=namespaces)


def impaired(namespace: str, ifnames: Sequence[str], opts: LinkOpts) -> Scoped:
    """Impair ends now; undone by putting back what each end held before."""
    if not opts.impaired:
        raise UsageError("nothing to impair", "give loss=, delay=, jitter= or rate=")
    before = {name: api.describe(namespace, name)["impairments"] for name in ifnames}
    done = [api.link_set(namespace, name, opts, False)[0] for name in ifnames]

    def undo() -> None:
        for name, held in before.items():
            api.link_set(namespace, name, agents.previous_opts(held), True)

    # a plain impairment is the lab's setting, not a marked fault: only this object knows
    # what to put back, so heal leaves it to the owner
    return Scoped(f"impairment of {namespace}", undo, done, healed=False)


def flap(namespace: str, ifname: str, down: str, up: str, count: Optional[int]) -> Scoped:
    """Start flapping a link; undone by stopping the service (which leaves the link up)."""
    service = agents.start_flap(namespace, ifname, down, up, count)

    def undo() -> None:
        if service.alive():
            service.stop(grace=partitions.STOP_GRACE)

    return Scoped(f"flap of {namespace}:{ifname}", undo, service)
