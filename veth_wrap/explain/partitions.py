"""Whether a partition vethwrap placed explains the silence: read the tables at both ends."""

from __future__ import annotations

from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.nets import Nets
from veth_wrap.kernel import faultread

HEAL = "partitioned by vethwrap (vethwrap heal)"


def partitioned(nets: Nets, namespace: str, dest: str) -> Finding | None:
    """A finding when the destination's namespace drops what namespace sends, or namespace
    drops the replies, by a partition of vethwrap's; None otherwise."""
    holders = [ns for ns, _ in nets.holders(dest) if ns != namespace]
    tables = faultread.tables([namespace, *holders], nets)
    mine = [a.split("/")[0] for link in nets.links.get(namespace, {}).values()
            for a in link.addresses]
    for holder in holders:
        table = tables.get(holder)
        if table is not None and table.ours and set(mine) & set(table.addresses):
            return _finding(table, f"{holder} drops what {namespace} sends", "forward")
    table = tables.get(namespace)
    if table is not None and table.ours and dest in table.addresses:
        return _finding(table, f"{namespace} drops the replies of {dest}", "reply")
    return None


def _finding(table, what: str, direction: str) -> Finding:
    lab = table.mark.lab
    found = Finding(Cause.PARTITIONED, f"{HEAL}: {what}",
                    [f"{table.netns}: nft table inet vethwrap, mark {table.mark.text()}, "
                     f"{table.dropped} packet(s) dropped so far"],
                    namespace=table.netns, direction=direction, decided_by="partition")
    found.fix(["vethwrap", "heal", "--lab", lab], None)
    return found
