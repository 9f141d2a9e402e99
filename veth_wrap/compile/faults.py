"""Faults -> plan steps: a partition's tables, and heal's removal of them. No I/O.

Each table goes in with one `nft -f -` inside its namespace, undone by deleting the table:
a step each, which touches that namespace alone.
"""

from __future__ import annotations

from typing import AbstractSet as Set
from typing import Iterable, Mapping, Optional

from veth_wrap.errors import ConflictError
from veth_wrap.model.faults import FAMILY, TABLE, FaultTable, Partition, table_script
from veth_wrap.steps import Kind, Op, Plan, Step


def delete_words(netns: str) -> tuple[str, ...]:
    """The `ip` words that remove a namespace's partition table."""
    return ("netns", "exec", netns, "nft", "delete", "table", FAMILY, TABLE)


def partition_plan(partition: Partition, addresses: Mapping[str, Iterable[str]],
                   held: Mapping[str, FaultTable], here: Optional[Set[str]] = None) -> Plan:
    """The steps that place partition; addresses: each member's addresses as read.

    here: the namespaces on this host (a lab over several hosts); the others get a note.
    Refused when a namespace it touches holds a partition already (heal first) or a table
    of vethwrap's name that vethwrap did not write.
    """
    plan = Plan()
    for ns, sources in partition.unheard().items():
        if here is not None and ns not in here:
            plan.notes.append(f"{ns} is on another host: run the same partition there")
            continue
        _refuse_held(partition.lab, ns, held.get(ns))
        dropped = [a for source in sources for a in addresses.get(source, ())]
        script = table_script(partition.mark(), dropped)
        op = Op(Kind.ADD_FIREWALL, ("netns", "exec", ns, "nft", "-f", "-"), delete_words(ns),
                target=ns, netns=ns)
        shown = ", ".join(sources)
        plan.steps.append(Step((op,), comment=f"{ns} stops hearing {shown}", input=script))
    return plan


def _refuse_held(lab: str, netns: str, table) -> None:
    if table is None:
        return
    if table.ours:
        raise ConflictError(f"{netns} is partitioned already (lab {table.mark.lab})",
                            f"heal it first: vethwrap heal --lab {table.mark.lab}")
    raise ConflictError(f"{netns} holds an nftables table {FAMILY} {TABLE} that vethwrap did "
                        "not write", f"remove or rename it first: ip netns exec {netns} nft "
                        f"delete table {FAMILY} {TABLE}")


def heal_plan(tables: Iterable[FaultTable], lab: str | None = None) -> Plan:
    """The steps that remove vethwrap's partition tables (of one lab, when given)."""
    plan = Plan()
    ours = [t for t in tables if t.ours and (lab is None or t.mark.lab == lab)]
    for table in ours:  # a step each, in its own namespace
        plan.add([Op(Kind.DEL_FIREWALL, delete_words(table.netns), target=table.netns,
                     netns=table.netns)], comment=f"{table.netns}'s partition table")
    return plan
