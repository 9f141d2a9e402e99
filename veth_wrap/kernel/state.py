"""Facts: what the kernel holds, read with `ip -j` and parsed into dataclasses."""

from __future__ import annotations

import json
from typing import Iterable, Optional

from veth_wrap.kernel import reader
from veth_wrap.kernel.reader import parse_links
from veth_wrap.kernel.readings import json_stream, read_docs
from veth_wrap.model.facts import LinkState, NetnsState
from veth_wrap.run.runner import Runner, default_runner, in_parts

__all__ = ["LinkState", "NetnsState", "json_stream", "list_netns", "parse_links", "read",
           "read_docs", "read_root", "netns_ids"]


def list_netns(runner: Optional[Runner] = None) -> list[str]:
    """The names of the namespaces under /run/netns (the runner says how it reads them)."""
    return (runner or default_runner()).netns()


def read(namespaces: Iterable[str], runner: Optional[Runner] = None, routes: bool = True,
         forwarding: Iterable[str] = ()) -> dict[str, NetnsState]:
    """Read the given namespaces with `ip -batch`es of `netns exec` lines.

    Each line forks an `ip` inside the batch, so many namespaces are read by several
    batches at once (runner.in_parts); one deleted meanwhile is left out.
    """
    runner = runner or default_runner()
    order = list(dict.fromkeys(namespaces))
    fwd = set(forwarding)
    found: dict[str, NetnsState] = {}
    for part in in_parts(order, lambda part: _read_part(part, runner, routes, fwd)):
        found.update(part)
    return found


def _read_part(order: list[str], runner: Runner, routes: bool,
               forwarding: set[str]) -> dict[str, NetnsState]:
    """One `ip -batch` reading links (and routes, forwarding) of the namespaces in order.

    IPv6 routes take a second batch, for the namespaces that hold IPv6 addresses.
    """
    reads = (reader.LINKS, reader.ROUTES) if routes else (reader.LINKS,)
    asks = [(ns, reading) for ns in order for reading in reads]
    asks += [(ns, reader.FORWARDING) for ns in order if ns in forwarding]
    docs = read_docs([reading.line(ns) for ns, reading in asks], runner)
    found: dict[str, NetnsState] = {}
    for (ns, reading), doc in zip(asks, docs):
        if reading is reader.LINKS and doc is not None:
            found[ns] = NetnsState(ns, parse_links(doc))
        elif ns not in found:
            continue  # vanished
        elif reading is reader.ROUTES:
            found[ns].routes = doc or []
        else:
            found[ns].forwarding = bool(doc)
    if routes:
        _add_ipv6_routes(found, runner)
    return found


def _add_ipv6_routes(found: dict[str, NetnsState], runner: Runner) -> None:
    """A second batch, only for namespaces with an IPv6 address on a vethwrap link."""
    dual = [ns for ns, st in found.items()
            if any(":" in a for link in st.marked() for a in link.addresses)]
    if not dual:  # an IPv4-only lab costs no process more
        return
    docs = read_docs([reader.ROUTES6.line(ns) for ns in dual], runner)
    for ns, doc in zip(dual, docs):
        doc = doc or []
        # every IPv6 interface has its link-local route: it says nothing about the lab
        found[ns].routes += [r for r in doc if not r.get("dst", "").startswith("fe80:")]


def read_root(runner: Optional[Runner] = None) -> NetnsState:
    """Read the root namespace's links (never changed by a read)."""
    runner = runner or default_runner()
    text = runner.run(reader.LINKS.argv()).stdout
    return NetnsState(None, parse_links(json.loads(text) if text.strip() else []))


def netns_ids(namespaces: list[str], runner: Runner) -> dict[str, dict[int, str]]:
    """For each namespace, the names behind the ids it gives its veth peers' namespaces."""
    return {ns: ids or {} for ns, ids in reader.each(namespaces, reader.NSIDS, runner).items()}
