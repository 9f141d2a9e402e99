"""Verification's first read, carried by the build's own last batch instead of a process more.

Once the last step of a plan has run, the kernel holds the whole lab: the `ip -j` reads that
verification starts with (each namespace's links and addresses, each probed hop's route) give
the same answer as lines at the end of that step as from a batch of their own. In its own
namespace such a line runs in the step's process; every other namespace's reads run as one
`ip -j -batch` forked into it by the same root batch. The lines change nothing, and the dry
run leaves them out.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from veth_wrap.run.fuse import fusable
from veth_wrap.run.reads import Reads
from veth_wrap.run.together import place
from veth_wrap.steps import Kind, Op, Step

UNSEEN = frozenset({Kind.SET_SYSCTL})  # changes no link, address or route a read shows


def fold(steps: list[Step], reads: Reads) -> list[Step]:
    """steps with the reads of spaces (links) and hops (source, address) after their last
    change.

    A namespace's reads join the last step that touches it when that step runs inside it
    (its own process, no fork more): later steps change it no further, but for the carrier
    of a veth whose far end comes up later, which verification reads off that far end
    (check/readback.implied_carrier). Any other namespace's reads form one step of their own
    after the last change, run in the same root batch (run/fuse): one fork a namespace.
    Unchanged when the last step cannot carry them: a `tc` step, one that reads stdin of
    its own, or one of a wave of batches that run at once (the others may not have finished).
    """
    at = max((i for i, step in enumerate(steps) if step.program in ("ip", "tc")),
             default=None)  # after the kernel's last change; files (hosts) may follow
    last = steps[at] if at is not None else None
    if last is None or not fusable(last) or place(last).group:
        return steps
    wanted: dict[str, list[Op]] = {}
    for ns in reads.spaces:
        wanted.setdefault(ns, []).append(Op(Kind.READ_LINKS, ("addr", "show"), target=ns,
                                            netns=ns))
    for src, addr in reads.hops:
        wanted.setdefault(src, []).append(Op(Kind.READ_ROUTE, ("route", "get", addr),
                                             target=addr, netns=src))
    head = list(steps[:at + 1])
    tail: list[Step] = []
    for ns, ops in wanted.items():
        where = _last_touch(head, ns)
        if where is None:
            tail.append(Step(tuple(ops), ns, comment=f"read back {ns}"))
            continue
        head[where] = dataclasses.replace(head[where], ops=head[where].ops + tuple(ops))
    return head + tail + steps[at + 1:]


def _last_touch(steps: list[Step], ns: str) -> Optional[int]:
    """The index of the last step that changes what ns's reads see, when it runs inside ns
    and can carry reads (an `ip` batch of the walker's, not one of a wave); else None."""
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        if step.netns == ns or any(op.netns == ns and op.kind not in UNSEEN
                                   for op in step.ops):
            ok = step.netns == ns and fusable(step) and not place(step).group
            return index if ok else None
    return None

