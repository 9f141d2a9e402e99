"""The kernel's objects, read per kind: one function a kind, for many namespaces at once.

Each takes namespaces (None: the root one) and returns what each holds, parsed; the named
ones are read together in one `ip -batch` (kernel/batch), the root one by the program itself.
A namespace that could not be read (gone meanwhile) gives None, or is left out where said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from veth_wrap.kernel.readings import Ns, Reading, gather, loads, read_docs
from veth_wrap.model.facts import LinkState
from veth_wrap.model.names import Mark
from veth_wrap.run.runner import Runner


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


def parse_nsids(items: list[dict]) -> dict[int, str | None]:
    """`ip -j netns list-id`: the name behind each id (None: a namespace without a name)."""
    return {item["nsid"]: item.get("name") for item in items if "nsid" in item}


LOOPBACK = Reading("ip -j link show lo")  # where vethwrap marks a namespace as its own
LINKS = Reading("ip -j -d addr show", parse_links)
ROUTES = Reading("ip -j route show")
ROUTES6 = Reading("ip -j -6 route show")
TABLES = Reading("ip -j route show table all")  # IPv4: every table, with its rules below
RULES = Reading("ip -j rule list")
NSIDS = Reading("ip -j netns list-id", parse_nsids)
NEIGHBOURS = Reading("ip -j neigh show")
FORWARDING = Reading("sysctl -n net.ipv4.ip_forward")  # prints 0 or 1: a JSON number
LINK_COUNTERS = Reading("ip -s -j link show")
QDISC_COUNTERS = Reading("tc -s -j qdisc show")
QDISCS = Reading("tc -j qdisc show")
RULESET = Reading("nft -j list ruleset")
VLANS = Reading("bridge -j vlan show")


def route_to(address: str) -> Reading:
    """The route the kernel picks to an address (`ip -j route get`)."""
    return Reading(f"ip -j route get {address}")


def routes(asks: Sequence[tuple[str, str]], runner: Runner) -> list[dict | None]:
    """The route picked for each (namespace, address), in one batch; a refusal raises
    (a namespace gone meanwhile gives None)."""
    docs = read_docs([route_to(address).line(ns) for ns, address in asks], runner)
    return [doc[0] if doc else None for doc in docs]


def addresses_to(address: str) -> Reading:
    """The interfaces that carry exactly this address."""
    import ipaddress  # only a diagnosis asks: completion imports this module too

    plen = 32 if ipaddress.ip_address(address).version == 4 else 128
    return Reading(f"ip -j addr show to {address}/{plen}")


def family_rules(family: int) -> Reading:
    return Reading(f"ip -j -{family} rule list")


def family_tables(family: int) -> Reading:
    return Reading(f"ip -j -{family} route show table all")


def bridge_fdb(bridge: str) -> Reading:
    return Reading(f"bridge -j fdb show br {bridge}")


def tc_filters(dev: str, hook: str) -> Reading:
    return Reading(f"tc -j filter show dev {dev} {hook}")


def tc(words: str) -> Reading:
    """Any `tc -j` listing (qdisc show, filter show dev X egress ...)."""
    return Reading(f"tc -j {words}")


def each(namespaces: Iterable[Ns], reading: Reading, runner: Runner,
         spread: bool = False) -> dict[Ns, Any]:
    """{namespace: the reading's value there, None where it failed}."""
    return {ns: values[0] for ns, values in gather(namespaces, [reading], runner,
                                                     spread).items()}


def one(ns: Ns, reading: Reading, runner: Runner) -> Any:
    """One reading of one namespace (None where it failed)."""
    return each([ns], reading, runner).get(ns)


def links(namespaces: Iterable[Ns], runner: Runner) -> dict[Ns, dict[str, LinkState] | None]:
    """Links with their addresses and details."""
    return each(namespaces, LINKS, runner)


def policies(namespaces: Iterable[str], family: int,
             runner: Runner) -> dict[Ns, tuple[list, list]]:
    """(rules, routes of every table) per namespace, for one address family."""
    found = gather(namespaces, [family_rules(family), family_tables(family)], runner)
    return {ns: (rules or [], routes or []) for ns, (rules, routes) in found.items()}


def counters(namespaces: Iterable[str], runner: Runner) -> dict[Ns, list]:
    """[links with counters (`ip -s`), qdiscs with counters (`tc -s`)] per namespace."""
    return gather(namespaces, [LINK_COUNTERS, QDISC_COUNTERS], runner)


@dataclass
class RouteAnswer:
    """What `ip -j route get` said: the route, or the kernel's complaint."""

    route: dict | None
    error: str = ""
    said: str = ""  # stderr as printed
    code: int = 0  # ip's exit status

    @property
    def local(self) -> bool:
        """True when the address belongs to the namespace itself."""
        return bool(self.route) and self.route.get("type") == "local"


def route_get(ns: Ns, address: str, runner: Runner, src: str | None = None) -> RouteAnswer:
    """The route the kernel picks from a namespace to an address (from src, if given), in a
    process of its own: a refusal comes with the kernel's words."""
    prefix = [] if ns is None else ["-n", ns]
    extra = ["from", src] if src else []
    result = runner.run(["ip", *prefix, "-j", "route", "get", address, *extra], check=False)
    routes = loads(result.stdout, [])
    said = result.stderr.strip()
    return RouteAnswer(routes[0] if routes else None, said.replace("RTNETLINK answers: ", ""),
                       said, result.returncode)


def _shown(ns: Ns, program: str, words: Sequence[str], runner: Runner) -> list | None:
    """`PROGRAM [-n NS] -j WORDS...` in a process of its own: its JSON, None when it failed."""
    result = runner.run([program, *(["-n", ns] if ns else []), "-j", *words], check=False)
    return loads(result.stdout, []) if result.returncode == 0 else None


def links_shown(ns: Ns, runner: Runner, *select: str) -> list | None:
    """`ip -d link show SELECT...` (dev NAME, type KIND) of one namespace."""
    return _shown(ns, "ip", ["-d", "link", "show", *select], runner)


def fdb_of(ns: Ns, dev: str, runner: Runner) -> list | None:
    """The forwarding entries of one device (a VXLAN's remotes among them)."""
    return _shown(ns, "bridge", ["fdb", "show", "dev", dev], runner)


def neighbours_to(ns: Ns, address: str, dev: str | None, runner: Runner) -> list | None:
    """The neighbour entries of one address (on one device, if given)."""
    return _shown(ns, "ip", ["neigh", "show", "to", address, *(["dev", dev] if dev else [])],
                  runner)


SYSCTL_FIRST = "net.ipv4.ip_forward"  # every line starts with it: where one namespace begins


def sysctls(wanted: dict[str, Sequence[str]], runner: Runner) -> dict[str, dict[str, str]]:
    """{namespace: {key: value, "" where the kernel has no such key}} in one process.

    A failed line (a namespace gone) ends the batch: the namespaces after it are left out.
    """
    keys = {ns: [k for k in dict.fromkeys(names) if k != SYSCTL_FIRST]
            for ns, names in wanted.items()}
    lines = [Reading(f"sysctl -e {SYSCTL_FIRST} " + " ".join(names)).line(ns)
             for ns, names in keys.items()]
    if not lines:
        return {}
    result = runner.run(["ip", "-batch", "-"], stdin="".join(ln + "\n" for ln in lines),
                        check=False)
    found = {}
    for ns, rows in zip(keys, _sections(result.stdout)):
        known = found[ns] = {}
        for row in rows:
            name, _, value = row.partition(" = ")
            known[name.strip()] = value.strip()
        for key in [SYSCTL_FIRST, *keys[ns]]:
            known.setdefault(key, "")  # absent in this kernel or namespace
    return found


def _sections(text: str) -> list[list[str]]:
    """`sysctl` output of several namespaces, split where each begins (at SYSCTL_FIRST)."""
    found: list[list[str]] = []
    for row in text.splitlines():
        if row.startswith(SYSCTL_FIRST + " = "):
            found.append([])
        if found and " = " in row:
            found[-1].append(row)
    return found


def xfrm(ns: str, runner: Runner) -> str:
    """`ip xfrm policy` then `ip xfrm state` of a namespace, as text (xfrm prints no JSON)."""
    return runner.run(["ip", "-n", ns, "-batch", "-"], stdin="xfrm policy\nxfrm state\n",
                      check=False).stdout


def in_ns(ns: Ns, words: Sequence[str]) -> list[str]:
    """The argv that runs words inside a namespace (`ip netns exec`), bare in the root one."""
    return ["ip", "netns", "exec", ns, *words] if ns is not None else list(words)


def saved(ns: Ns, tools: Sequence[str], runner: Runner) -> str:
    """What each `iptables-save -c` of tools prints in a namespace, one process a tool."""
    return "".join(runner.run(in_ns(ns, [tool, "-c"]), check=False).stdout for tool in tools)


def table_saved(ns: Ns, tool: str, table: str, runner: Runner) -> str:
    """One table as `iptables-save -t TABLE` (tool: iptables-save, ip6tables-save ...)."""
    return runner.run(in_ns(ns, [tool, "-t", table]), check=False).stdout


def nft_ruleset(ns: Ns, runner: Runner) -> Any:
    """`nft -j -a list ruleset` of a namespace ({} when nft printed nothing to parse)."""
    return loads(runner.run(in_ns(ns, ["nft", "-j", "-a", "list", "ruleset"]),
                            check=False).stdout, {})


def nft_table(ns: Ns, family: str, table: str, runner: Runner) -> str:
    """One nft table as text (its JSON leaves out the device of a netdev hook in some versions)."""
    return runner.run(in_ns(ns, ["nft", "list", "table", family, table]), check=False).stdout


def firewalls(named: Sequence[str], tools: Sequence[str],
              runner: Runner) -> dict[str, tuple[str, Any]]:
    """{namespace: (what tools print, `nft -j -a list ruleset`)} in one `ip -batch`; the
    namespaces after a failed line (one gone) are left out."""
    words = [*(f"{tool} -c" for tool in tools), "nft -j -a list ruleset"]
    lines = [Reading(w).line(ns) for ns in named for w in words]
    out = runner.run(["ip", "-batch", "-"], stdin="".join(ln + "\n" for ln in lines),
                     check=False).stdout
    return dict(zip(named, split_saves(out)))


def split_saves(out: str) -> list[tuple[str, Any]]:
    """(iptables-save text, nft's parsed JSON) per namespace, in batch order: each one's
    save text ends where its `nft -j` line, one JSON document on one line, begins."""
    parts, text = [], []
    for row in out.splitlines(keepends=True):
        if row.startswith("{"):
            parts.append(("".join(text), loads(row, {})))
            text = []
        else:
            text.append(row)
    return parts
