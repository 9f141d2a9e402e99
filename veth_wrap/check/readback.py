"""Verification's first read, as the walker hands it back: which namespaces, what it says.

Where the reads run is the schedule's business (run/readback); this side says what
verification wants read and makes sense of what the lines printed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.kernel.state import NetnsState, json_stream, parse_links
from veth_wrap.model.topology import Kind, Lab
from veth_wrap.steps import Kind as OpKind
from veth_wrap.steps import Step

ROUTED = (Kind.PAIR, Kind.CHAIN, Kind.MESH)  # kinds whose routes verification checks


@dataclass
class Seen:
    """What the build read back: facts by namespace, route devices by hop."""

    facts: dict[str, NetnsState] = field(default_factory=dict)
    routes: dict[tuple[str, str], Optional[str]] = field(default_factory=dict)


def state_spaces(lab: Lab, hub_from: int) -> tuple[str, ...]:
    """The namespaces verification reads: all of them, or for a big bridge the hub alone."""
    hub_only = lab.hub is not None and len(lab.members) >= hub_from \
        and all(link.b.netns == lab.hub for link in lab.links)
    return (lab.hub,) if hub_only else lab.namespaces()


def seen(read: list[tuple[Step, str]]) -> Optional[Seen]:
    """Parse the JSON that read-back lines printed, in order; None when there were none."""
    if not read:
        return None
    found = Seen()
    for step, stdout in read:
        docs = json_stream(stdout)
        for op in step.ops:
            if op.kind is OpKind.READ_LINKS:
                found.facts[op.netns] = NetnsState(op.netns, parse_links(next(docs, None) or []))
            elif op.kind is OpKind.READ_ROUTE:
                doc = next(docs, None)
                found.routes[(op.netns, op.target)] = doc[0].get("dev") if doc else None
    return found


def implied_carrier(lab: Lab, facts: dict[str, NetnsState]) -> dict[str, NetnsState]:
    """facts (in the order they were read) with carrier given to a veth end read before its
    far end came up, when that far end, read later, has carrier: a veth has carrier only
    while both its ends are up, so the far end shows that the near one has it too."""
    order = {ns: index for index, ns in enumerate(facts)}
    out = dict(facts)
    for link in lab.links:
        for here, there in ((link.a, link.b), (link.b, link.a)):
            if order.get(there.netns, -1) <= order.get(here.netns, len(order)):
                continue
            mine = out[here.netns].links.get(here.ifname)
            far = out[there.netns].links.get(there.ifname)
            if mine and far and mine.kind == far.kind == "veth" and mine.up and far.up \
                    and far.lower_up and not mine.lower_up and far.peer_index == mine.ifindex:
                flags = [*mine.raw.get("flags", []), "LOWER_UP"]
                lit = dataclasses.replace(mine, operstate="UP", raw={**mine.raw, "flags": flags})
                state = out[here.netns]
                out[here.netns] = dataclasses.replace(state, links={**state.links,
                                                                    here.ifname: lit})
    return out
