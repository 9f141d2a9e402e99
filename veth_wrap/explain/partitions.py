"""A drop by a partition vethwrap placed: named as such, with heal as the fix.

The firewall reading finds the rule like any other (its set of addresses resolved); the
rule's comment carries vethwrap's mark, so the finding says whose it is and how to undo it.
"""

from __future__ import annotations

from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.nets import label
from veth_wrap.model.faults import ROLE, TABLE
from veth_wrap.model.names import Mark

HEAL = "partitioned by vethwrap (vethwrap heal)"


def from_drops(drops: list) -> Finding | None:
    """The finding for the first drop by a vethwrap partition among drops (firewall.Drop),
    the requests' before the replies' (where both drop, the requests never came back)."""
    for drop in sorted(drops, key=lambda d: d.packet.what != "requests"):
        raw = drop.rule.raw if drop.rule is not None else None
        mark = Mark.parse((raw or {}).get("comment"))
        if mark is None or mark.role != ROLE or drop.chain.table != TABLE:
            continue
        where = label(drop.place.ns)
        found = Finding(Cause.PARTITIONED,
                        f"{HEAL}: {where} drops the {drop.packet.what} from "
                        f"{drop.packet.src}",
                        [f"{where}: nft table {drop.chain.family} {TABLE}, mark {mark.text()}, "
                         f"{drop.rule.counter or 0} packet(s) dropped so far"],
                        namespace=drop.place.ns, decided_by="firewall")
        found.fix(["vethwrap", "heal", "--lab", mark.lab], None)
        return found
    return None
