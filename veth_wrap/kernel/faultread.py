"""Read vethwrap's faults back from the kernel: each namespace's partition table (nft -j)."""

from __future__ import annotations

import shutil
from typing import Iterable, Optional

from veth_wrap.kernel import reader
from veth_wrap.model.faults import FaultTable, parse_ruleset
from veth_wrap.run.runner import Runner, default_runner


def tables(namespaces: Iterable[str], runner: Optional[Runner] = None) -> dict[str, FaultTable]:
    """{namespace: its `inet vethwrap` table} for the namespaces that hold one.

    One `ip -batch` of `netns exec NS nft -j list ruleset` lines (several at once for many
    namespaces); a namespace gone meanwhile, or a host without nft, reads as holding none.
    """
    order = list(dict.fromkeys(namespaces))
    if not order or shutil.which("nft") is None:
        return {}
    runner = runner or default_runner()
    found = {}
    for ns, doc in reader.each(order, reader.RULESET, runner, spread=True).items():
        table = parse_ruleset(ns, doc) if isinstance(doc, dict) else None
        if table is not None:
            found[ns] = table
    return found
