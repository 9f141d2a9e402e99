"""Facts: what the kernel holds, read with `ip -j` and parsed into dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from veth_wrap.errors import CommandFailed
from veth_wrap.model.names import Mark
from veth_wrap.run.runner import Runner, default_runner, in_batches


@dataclass(frozen=True)
class LinkState:
    """One interface as `ip -j -d addr show` reports it."""

    ifname: str
    ifindex: int
    kind: str
    up: bool
    operstate: str
    addresses: tuple[str, ...]
    mark: Optional[Mark] = None
    master: Optional[str] = None
    peer_index: Optional[int] = None
    peer_netnsid: Optional[int] = None
    mtu: int = 0
    mac: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def carrier(self) -> bool:
        """True when the link is up and so is whatever is at its other end."""
        return self.operstate in ("UP", "UNKNOWN")

    @property
    def lower_up(self) -> bool:
        """True when the kernel reports carrier now (LOWER_UP), before operstate catches up.

        The kernel updates operstate through linkwatch, which may lag by up to a second;
        LOWER_UP is set the moment both ends of a veth are up, and traffic flows from then.
        """
        flags = self.raw.get("flags")
        return "LOWER_UP" in flags if flags is not None else self.carrier


@dataclass
class NetnsState:
    """One namespace: its links, routes and whatever else was asked for."""

    name: Optional[str]
    links: dict[str, LinkState] = field(default_factory=dict)
    routes: list[dict] = field(default_factory=list)
    forwarding: Optional[bool] = None

    @property
    def lo_mark(self) -> Optional[Mark]:
        """The namespace's own mark, kept on lo."""
        lo = self.links.get("lo")
        return lo.mark if lo else None

    def marked(self) -> list[LinkState]:
        """The links that carry a vethwrap mark (lo excluded)."""
        return [link for link in self.links.values() if link.mark and link.ifname != "lo"]

    def labs(self) -> set[str]:
        """Every lab that has a mark in this namespace."""
        found = {link.mark.lab for link in self.marked()}
        return found | ({self.lo_mark.lab} if self.lo_mark else set())

    def address_owner(self, address: str) -> Optional[str]:
        """The interface that holds an address (with prefix), if any."""
        ip = address.split("/")[0]
        for link in self.links.values():
            if any(a.split("/")[0] == ip for a in link.addresses):
                return link.ifname
        return None


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
    """The names of the namespaces under /run/netns."""
    runner = runner or default_runner()
    text = runner.run(["ip", "-j", "netns", "list"]).stdout.strip()
    return [entry["name"] for entry in json.loads(text)] if text else []


def read(namespaces: Iterable[str], runner: Optional[Runner] = None, routes: bool = True,
         forwarding: Iterable[str] = ()) -> dict[str, NetnsState]:
    """Read the given (existing) namespaces with `ip -batch`es of `netns exec` lines.

    Each line forks an `ip` inside the batch, so many namespaces are read by several
    batches at once (runner.BATCHES_AT_ONCE).
    """
    runner = runner or default_runner()
    order = list(dict.fromkeys(namespaces))
    fwd = set(forwarding)
    found: dict[str, NetnsState] = {}
    for part in in_batches(order, lambda part: _read_present(part, runner, routes, fwd)):
        found.update(part)
    return found


def _read_present(order: list[str], runner: Runner, routes: bool,
                  forwarding: set[str]) -> dict[str, NetnsState]:
    """_read_part, leaving out namespaces that another process deleted since they were listed."""
    while True:
        try:
            return _read_part(order, runner, routes, forwarding)
        except CommandFailed as exc:
            if "Cannot open network namespace" not in exc.stderr:
                raise
            still = set(list_netns(runner))
            if all(ns in still for ns in order):
                raise
            order = [ns for ns in order if ns in still]


def _read_part(order: list[str], runner: Runner, routes: bool,
               forwarding: set[str]) -> dict[str, NetnsState]:
    """One `ip -batch` reading links (and routes, forwarding) of the namespaces in order.

    IPv6 routes take a second batch, for the namespaces that hold IPv6 addresses.
    """
    fwd = [ns for ns in order if ns in forwarding]
    lines = []
    for ns in order:
        lines.append(f"netns exec {ns} ip -j -d addr show")
        if routes:
            lines.append(f"netns exec {ns} ip -j route show")
    lines.extend(f"netns exec {ns} sysctl -n net.ipv4.ip_forward" for ns in fwd)
    if not lines:
        return {}
    docs = iter(json_stream(runner.run(["ip", "-batch", "-"], stdin="\n".join(lines) + "\n")
                            .stdout))
    found = {}
    for ns in order:
        found[ns] = NetnsState(ns, parse_links(next(docs)))
        if routes:
            found[ns].routes = next(docs)
    for ns in fwd:
        found[ns].forwarding = bool(next(docs))
    if routes:
        _add_ipv6_routes(found, runner)
    return found


def _add_ipv6_routes(found: dict[str, NetnsState], runner: Runner) -> None:
    """A second batch, only for namespaces with an IPv6 address on a vethwrap link."""
    dual = [ns for ns, st in found.items()
            if any(":" in a for link in st.marked() for a in link.addresses)]
    if not dual:  # an IPv4-only lab costs no process more
        return
    lines = "".join(f"netns exec {ns} ip -j -6 route show\n" for ns in dual)
    docs = json_stream(runner.run(["ip", "-batch", "-"], stdin=lines).stdout)
    for ns, doc in zip(dual, docs):
        # every IPv6 interface has its link-local route: it says nothing about the lab
        found[ns].routes += [r for r in doc if not r.get("dst", "").startswith("fe80:")]


def read_root(runner: Optional[Runner] = None) -> NetnsState:
    """Read the root namespace's links (never changed by a read)."""
    runner = runner or default_runner()
    text = runner.run(["ip", "-j", "-d", "addr", "show"]).stdout
    return NetnsState(None, parse_links(json.loads(text) if text.strip() else []))
