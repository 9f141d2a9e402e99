"""Verification's first read, carried by the build's own last batch instead of a process more.

Once the last step of a plan has run, the kernel holds the whole lab: the `ip -j` reads that
verification starts with (each namespace's links and addresses, each probed hop's route) give
the same answer as lines at the end of that step as from a batch of their own. In its own
namespace such a line runs in the step's process; elsewhere it is a `netns exec` line, as a
separate read would be. The lines change nothing, and the dry run leaves them out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Optional

from veth_wrap.kernel.state import NetnsState, json_stream, parse_links
from veth_wrap.model.topology import Kind, Lab
from veth_wrap.steps import Op, Plan, Step

ROUTED = (Kind.PAIR, Kind.CHAIN, Kind.MESH)  # kinds whose routes verification checks


@dataclass
class Seen:
    """What the build's last batch read back: facts by namespace, route devices by hop."""

    facts: dict[str, NetnsState] = field(default_factory=dict)
    routes: dict[tuple[str, str], Optional[str]] = field(default_factory=dict)


def state_spaces(lab: Lab, hub_from: int) -> tuple[str, ...]:
    """The namespaces verification reads: all of them, or for a big bridge the hub alone."""
    hub_only = lab.hub is not None and len(lab.members) >= hub_from \
        and all(link.b.netns == lab.hub for link in lab.links)
    return (lab.hub,) if hub_only else lab.namespaces()


def fold(plan: Plan, lab: Lab, spaces: Iterable[str],
         hops: Iterable[tuple[str, str]]) -> Plan:
    """plan with the reads of spaces (links) and hops (source, address) in its last step.

    Unchanged when the last step cannot carry them: a `tc` step, one of a wave of batches
    that run at once (the others may not have finished), or a lab with ends in the root
    namespace, which verification reads itself.
    """
    at = max((i for i, step in enumerate(plan.steps) if step.program in ("ip", "tc")),
             default=None)  # after the kernel's last change; files (hosts) may follow
    last = plan.steps[at] if at is not None else None
    if last is None or last.program != "ip" or last.group \
            or any(end.netns is None for end in lab.ends()):
        return plan
    reads = [_read(last, ns, ("addr", "show"), ("links", ns)) for ns in spaces]
    reads += [_read(last, src, ("route", "get", addr), ("route", src, addr))
              for src, addr in hops]
    step = Step(last.ops + tuple(reads), last.netns, last.program, last.comment, last.force)
    return dataclasses.replace(plan, steps=plan.steps[:at] + [step] + plan.steps[at + 1:])


def _read(step: Step, ns: str, words: tuple[str, ...], what: tuple) -> Op:
    """A read line: plain in the step's own namespace (it runs with -j -d), else netns exec."""
    if ns == step.netns:
        return Op(words, read=what)
    return Op(("netns", "exec", ns, "ip", "-j", "-d") + words, read=what)


def seen(read: list[tuple[Step, str]]) -> Optional[Seen]:
    """Parse the JSON that read-back lines printed, in order; None when there were none."""
    if not read:
        return None
    found = Seen()
    for step, stdout in read:
        docs = json_stream(stdout)
        for op in (op for op in step.ops if op.read):
            doc = next(docs, None)
            if op.read[0] == "links":
                found.facts[op.read[1]] = NetnsState(op.read[1], parse_links(doc or []))
            else:
                found.routes[op.read[1:]] = doc[0].get("dev") if doc else None
    return found
