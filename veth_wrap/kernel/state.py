"""Facts: what the kernel holds, read with `ip -j` and parsed into dataclasses."""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Optional, Sequence

from veth_wrap.errors import CommandFailed, failed_lines
from veth_wrap.model.facts import LinkState, NetnsState
from veth_wrap.model.names import Mark
from veth_wrap.run.runner import Runner, default_runner, in_batches

__all__ = ["LinkState", "NetnsState", "json_stream", "list_netns", "parse_links", "read",
           "read_docs", "read_root", "netns_ids"]
VANISHED = "Cannot open network namespace"


def parse_links(items: list[dict]) -> dict[str, LinkState]:
    """Parse `ip -j -d addr show` (or link show) output."""
    links = {}
    for item in items:
        addresses = tuple(f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", [])
                          if a.get("family") in ("inet", "inet6") and a.get("scope") != "link")
        links[item["ifname"]] = LinkState(
            ifname=item["ifname"], ifindex=item.get("ifindex", 0),
            kind=item.get("linkinfo", {}).get("info_kind", item.get("link_type", "")),
            up="UP" in item.get("flags", []), operstate=item.get("operstate", ""),
            addresses=addresses, mark=Mark.parse(item.get("ifalias")),
            master=item.get("master"), peer_index=item.get("link_index"),
            peer_netnsid=item.get("link_netnsid"), mtu=item.get("mtu", 0),
            mac=item.get("address", ""), raw=item,
        )
    return links


def json_stream(text: str) -> Iterator:
    """The JSON documents printed one after another by an `ip -batch` of `ip -j` commands."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        doc, pos = decoder.raw_decode(text, pos)
        yield doc


def list_netns(runner: Optional[Runner] = None) -> list[str]:
    """The names of the namespaces under /run/netns (the runner says how it reads them)."""
    return (runner or default_runner()).netns()


def read_docs(lines: Sequence[str], runner: Runner, strict: bool = True) -> list:
    """One JSON document per batch line (None where the line could not run).

    Each line is `netns exec NS PROGRAM -j ...`. strict: any failure raises, except that of
    namespaces another process deleted meanwhile, whose lines are dropped and the rest read
    again. Otherwise `ip -force` runs every line and a failed one gives None.
    """
    lines = list(lines)
    if not lines:
        return []
    if not strict:
        return _tolerant(lines, runner)
    for attempt in range(2):
        try:
            out = runner.run(["ip", "-batch", "-"], stdin=_text(lines)).stdout
        except CommandFailed as exc:
            # Namespaces come and go while others work: read again without those gone, or,
            # once, when the failure said nothing (one caught half-made by `ip netns add`).
            still = set(runner.netns(bound=True))
            kept = [ln for ln in lines if ln.split()[2] in still]
            if len(kept) < len(lines):
                docs = dict(zip(kept, read_docs(kept, runner)))
                return [docs.get(line) for line in lines]
            if attempt or (exc.stderr and VANISHED not in exc.stderr):
                raise
            continue
        return _aligned(out, set(), len(lines))
    return []  # not reached: the second failure raised


def _tolerant(lines: list[str], runner: Runner) -> list:
    """Every line's document, None for those that failed: after a failure, the rest again.

    Never `ip -force` with `netns exec` lines: when the namespace of such a line is gone,
    iproute2's forked child fails to enter it and goes on running the rest of the batch
    itself, forking again at every later line that fails the same way.
    """
    docs: list = []
    while len(docs) < len(lines):
        rest = lines[len(docs):]
        result = runner.run(["ip", "-batch", "-"], stdin=_text(rest), check=False)
        failed = failed_lines(result.stderr)
        if result.returncode == 0 or not failed:
            return docs + _aligned(result.stdout, set(), len(rest)) if result.returncode == 0 \
                else docs + [None] * len(rest)
        good = failed[0] - 1
        docs += _aligned(result.stdout, set(), good) + [None]
    return docs


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _aligned(stdout: str, failed: set[int], count: int) -> list:
    docs = json_stream(stdout)
    return [None if number in failed else next(docs, None) for number in range(1, count + 1)]


def read(namespaces: Iterable[str], runner: Optional[Runner] = None, routes: bool = True,
         forwarding: Iterable[str] = ()) -> dict[str, NetnsState]:
    """Read the given namespaces with `ip -batch`es of `netns exec` lines.

    Each line forks an `ip` inside the batch, so many namespaces are read by several
    batches at once (runner.in_batches); one deleted meanwhile is left out.
    """
    runner = runner or default_runner()
    order = list(dict.fromkeys(namespaces))
    fwd = set(forwarding)
    found: dict[str, NetnsState] = {}
    for part in in_batches(order, lambda part: _read_part(part, runner, routes, fwd)):
        found.update(part)
    return found


def _read_part(order: list[str], runner: Runner, routes: bool,
               forwarding: set[str]) -> dict[str, NetnsState]:
    """One `ip -batch` reading links (and routes, forwarding) of the namespaces in order.

    IPv6 routes take a second batch, for the namespaces that hold IPv6 addresses.
    """
    reads = ("ip -j -d addr show", "ip -j route show") if routes else ("ip -j -d addr show",)
    asks = [(ns, words) for ns in order for words in reads]
    asks += [(ns, "sysctl -n net.ipv4.ip_forward") for ns in order if ns in forwarding]
    docs = read_docs([f"netns exec {ns} {words}" for ns, words in asks], runner)
    found: dict[str, NetnsState] = {}
    for (ns, words), doc in zip(asks, docs):
        if words.startswith("ip -j -d addr") and doc is not None:
            found[ns] = NetnsState(ns, parse_links(doc))
        elif ns not in found:
            continue  # vanished
        elif words.startswith("ip -j route"):
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
    docs = read_docs([f"netns exec {ns} ip -j -6 route show" for ns in dual], runner)
    for ns, doc in zip(dual, docs):
        doc = doc or []
        # every IPv6 interface has its link-local route: it says nothing about the lab
        found[ns].routes += [r for r in doc if not r.get("dst", "").startswith("fe80:")]


def read_root(runner: Optional[Runner] = None) -> NetnsState:
    """Read the root namespace's links (never changed by a read)."""
    runner = runner or default_runner()
    text = runner.run(["ip", "-j", "-d", "addr", "show"]).stdout
    return NetnsState(None, parse_links(json.loads(text) if text.strip() else []))


def netns_ids(namespaces: list[str], runner: Runner) -> dict[str, dict[int, str]]:
    """For each namespace, the names behind the ids it gives its veth peers' namespaces."""
    docs = read_docs([f"netns exec {ns} ip -j netns list-id" for ns in namespaces], runner,
                     strict=False)
    return {ns: {item["nsid"]: item.get("name") for item in doc or [] if "nsid" in item}
            for ns, doc in zip(namespaces, docs)}
