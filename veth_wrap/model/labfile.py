"""Lab files: YAML that names a lab, its namespaces, links, bridge, routes -> a validated Lab."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from veth_wrap.errors import UsageError
from veth_wrap.model import hosts as hostfile
from veth_wrap.model import labservices, names, safeyaml
from veth_wrap.model.labparts import BuilderParts, Where
from veth_wrap.model.names import Role
from veth_wrap.model.topology import (
    DEFAULT_SUBNET,
    USABLE_HINT,
    End,
    Kind,
    Lab,
    Link,
    unusable,
)

KEYS = {"name", "subnet", "namespaces", "links", "bridges", "routes", "forwarding",
        *hostfile.KEYS, labservices.KEY}
LINK_OPTION_KEYS = ("delay", "jitter", "loss", "rate", "mtu")
LINK_KEYS = {"between", "interfaces", "addresses", "direction", *LINK_OPTION_KEYS}


class LabFileError(UsageError):
    """A lab file with problems; every problem is one line naming file, line and key."""

    def __init__(self, source: str, problems: list[str],
                 hint: str = "fix the file and run again") -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{source}: {count}: {problems[0]}" if len(problems) == 1
                         else f"{source} has {count}", hint)


class UnreadableLabFile(LabFileError):
    """A lab file refused as a whole: not there, not a regular file, too big."""

    def __init__(self, problem: str, hint: str) -> None:
        self.problems = [problem]
        UsageError.__init__(self, problem, hint)


@dataclass
class _Doc:
    """The parsed document, where each value came from, and the problems found so far."""

    source: str
    data: Any
    lines: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def fail(self, where: Where, message: str, hint: str = "") -> None:
        """Record a problem at the line of `where` (or of its nearest parent)."""
        at = where
        while at and at not in self.lines:
            at = at[:-1]
        line = self.lines.get(at, 1)
        key = _key_text(where) or "(top)"
        self.problems.append(f"{self.source}:{line}: {key}: {message}"
                             + (f" ({hint})" if hint else ""))


def _key_text(where: Where) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load(path: Union[str, Path], prefix: str = "") -> Lab:
    """Read (bounded: see safeyaml) and validate a lab file; '-' reads stdin."""
    return parse(read_text(path), _source(path), prefix)


def source_name(path: Union[str, Path]) -> str:
    """How a lab file is named in messages."""
    return "<stdin>" if str(path) == safeyaml.STDIN else str(path)


_source = source_name


def read_text(path: Union[str, Path], hint: str = "") -> str:
    """The file's text, or the one-line refusal of what it is (too big, a FIFO, not UTF-8)."""
    try:
        return safeyaml.read_text(str(path))
    except safeyaml.Refused as exc:
        raise _refusal(_source(path), exc, hint) from None


def _refusal(source: str, exc: safeyaml.Refused, hint: str = "") -> LabFileError:
    if exc.line is None:
        return UnreadableLabFile(f"lab file {source} {exc.message}", hint or exc.hint)
    return LabFileError(source, [f"{source}:{exc.line}: {exc.message}"], exc.hint)


def parse(text: str, source: str = "<lab>", prefix: str = "") -> Lab:
    """Validate YAML text as a lab file; names are prefixed with `prefix` (tests, copies)."""
    doc = _compose(text, source)
    lab = _Builder(doc, prefix).build()
    if doc.problems or lab is None:
        raise LabFileError(source, doc.problems or [f"{source}:1: nothing could be read"])
    return lab


def _compose(text: str, source: str) -> _Doc:
    """Parse YAML (bounded in values and depth) keeping the line of every value."""
    try:
        composed = safeyaml.compose(text)
    except safeyaml.Refused as exc:
        raise _refusal(source, exc) from None
    doc = _Doc(source, composed.data, composed.lines)
    for where, line in composed.twice:
        doc.lines[where] = line
        doc.fail(where, "key given twice", "keep one")
    return doc


class _Builder(BuilderParts):
    """Turns the plain document into a Lab, recording problems instead of stopping at one."""

    def __init__(self, doc: _Doc, prefix: str) -> None:
        self.doc, self.prefix = doc, prefix
        self.members: list[str] = []
        self.links: list[Link] = []
        self.used: set[str] = set()  # addresses taken, without prefix length
        self.places: dict[tuple, Where] = {}  # (netns, ifname) -> where it was asked for
        self._bridge_nets: list = []

    def build(self) -> Optional[Lab]:
        """The Lab, or None when the document is too broken to go on."""
        data = self.doc.data
        if not isinstance(data, dict):
            self.doc.fail((), "a lab file is a mapping with name, namespaces and links",
                          "see examples/pair.yaml")
            return None
        for key in sorted(set(data) - KEYS):
            self.doc.fail((key,), "unknown key", f"expected one of {', '.join(sorted(KEYS))}")
        self.name = self._lab_name(data.get("name"))
        self.subnet = self._network(data, ("subnet",))
        self.members = self._namespaces(data.get("namespaces"))
        self.ns = {orig: self.prefix + orig for orig in self.members}
        bridge, hub = self._bridges(data.get("bridges"))
        self._links(data.get("links"))
        routes = self._routes(data.get("routes"))
        forwarding = self._forwarding(data.get("forwarding"))
        self._check_ifnames()
        hosts = hostfile.read(self, data)  # None without a hosts section
        services = labservices.read(self, data)
        if self.doc.problems:
            return None
        return Lab(self.name, Kind.CUSTOM, tuple(self.ns[m] for m in self.members),
                   tuple(self.links), hub=hub, bridges=(bridge,) if bridge else (),
                   routes=tuple(routes), forwarding=tuple(forwarding),
                   subnet=str(self.subnet) if self.subnet else None,
                   extra={key: value for key, value in (("hosts", hosts),
                                                        (labservices.KEY, services)) if value})

    def _check(self, where: Where, func, value) -> bool:
        """Run a names.check_* on value; record its refusal."""
        try:
            func(value)
            return True
        except UsageError as exc:
            self.doc.fail(where, exc.message, exc.hint)
            return False

    def _lab_name(self, value) -> str:
        if not isinstance(value, str) or not value:
            self.doc.fail(("name",), "the lab needs a name (a string)", "add e.g. 'name: demo'")
            return "lab"
        full = self.prefix + value
        self._check(("name",), names.check_lab, full)
        return full

    def _network(self, data: dict, where: Where):
        value = data.get(where[-1])
        if value is None:
            return None
        try:
            net = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            self.doc.fail(where, f"{value!r} is not a subnet", "write it like 10.0.0.0/24")
            return None
        if "/" not in str(value):
            self.doc.fail(where, f"{value!r} has no prefix length", "write it like 10.0.0.0/24")
        why = unusable(net)
        if why:
            self.doc.fail(where, f"{net} {why}", USABLE_HINT)
            return None
        return net

    def _list(self, value, where: Where, what: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.doc.fail(where, f"expected a list of {what}")
            return []
        return value

    def _namespaces(self, value) -> list[str]:
        if value is None:
            self.doc.fail(("namespaces",), "missing", "list the namespaces, e.g. [a, b]")
        found: list[str] = []
        seen: set[str] = set()  # a set beside the list: thousands of names stay linear
        for i, item in enumerate(self._list(value, ("namespaces",), "namespace names")):
            where = ("namespaces", i)
            if not isinstance(item, str):
                self.doc.fail(where, "a namespace name is a string")
            elif item in seen:
                self.doc.fail(where, f"namespace {item!r} is listed twice", "list it once")
            elif self._check(where, names.check_netns, self.prefix + item):
                if (self.prefix + item).startswith(f"{names.MARK}-"):
                    self.doc.fail(where, f"{item!r} is reserved for lab hubs", "rename it")
                found.append(item)
                seen.add(item)
        if value == []:
            self.doc.fail(("namespaces",), "a lab needs at least one namespace")
        return found

    def _member(self, value, where: Where) -> Optional[str]:
        """A namespace reference: must be one listed under namespaces."""
        if not isinstance(value, str) or value not in self.ns:
            self.doc.fail(where, f"namespace {value!r} is not listed under namespaces",
                          "list it there, or fix the name")
            return None
        return value

    def _address(self, value, where: Where, inside) -> Optional[str]:
        """An interface address with prefix, inside `inside` when given, used once."""
        try:
            iface = ipaddress.ip_interface(str(value))
        except ValueError:
            self.doc.fail(where, f"{value!r} is not an address", "write it like 10.0.0.1/24")
            return None
        if "/" not in str(value):
            self.doc.fail(where, f"{value!r} has no prefix length", "write it like 10.0.0.1/24")
            return None
        why = unusable(iface)
        if why:
            self.doc.fail(where, f"{iface} {why}", USABLE_HINT)
            return None
        if inside is not None and iface.ip not in inside:
            self.doc.fail(where, f"{value} is outside the subnet {inside}",
                          "pick an address inside it, or change the subnet")
            return None
        if str(iface.ip) in self.used:
            self.doc.fail(where, f"address {iface.ip} is used twice", "give each end its own")
            return None
        self.used.add(str(iface.ip))
        return str(iface)

    def _links(self, value) -> None:
        pending = []
        for i, item in enumerate(self._list(value, ("links",), "links")):
            where = ("links", i)
            if isinstance(item, list):
                item = {"between": item}
            if not isinstance(item, dict):
                self.doc.fail(where, "a link is [a, b] or a mapping with between")
                continue
            for key in sorted(set(item) - LINK_KEYS):
                self.doc.fail(where + (key,), "unknown key",
                              f"expected {', '.join(sorted(LINK_KEYS))}")
            ends = self._two(item.get("between"), where + ("between",), "namespaces")
            if ends is None:
                continue
            a, b = (self._member(ns, where + ("between", k)) for k, ns in enumerate(ends))
            if a and b and a == b:
                self.doc.fail(where + ("between",), "a link joins two different namespaces")
            elif a and b:
                pending.append((where, item, a, b))
        explicit = [self._explicit(where, item) for where, item, _, _ in pending]
        auto = self._link_subnets(sum(1 for e in explicit if e is None))
        for (where, item, a, b), addrs in zip(pending, explicit):
            self.links.append(self._link(where, item, a, b, addrs or next(auto, ((), ()))))

    def _two(self, value, where: Where, what: str) -> Optional[list]:
        if not isinstance(value, list) or len(value) != 2:
            self.doc.fail(where, f"expected two {what}, e.g. [a, b]")
            return None
        return value

    def _explicit(self, where: Where, item: dict) -> Optional[tuple]:
        """The link's own addresses (None: take them from the subnet; ['-', '-']: none)."""
        value = item.get("addresses")
        if value is None:
            return None
        pair = self._two(value, where + ("addresses",), "addresses (or none: [null, null])")
        if pair is None:
            return ((), ())
        return tuple((self._address(addr, where + ("addresses", k), self.subnet),)
                     if addr is not None else () for k, addr in enumerate(pair))

    def _link_subnets(self, count: int):
        """/30 (or /126) blocks of the lab subnet for links without addresses, skipping used."""
        if count == 0:
            return iter(())
        net = self.subnet or ipaddress.ip_network(DEFAULT_SUBNET)
        taken = list(self._bridge_nets)
        found = []
        for block in net.subnets(new_prefix=30 if net.version == 4 else 126):
            hosts = [ipaddress.ip_address(int(block.network_address) + k) for k in (1, 2)]
            if any(block.overlaps(t) for t in taken) or any(str(h) in self.used for h in hosts):
                continue
            self.used.update(str(h) for h in hosts)
            found.append(tuple((f"{h}/{block.prefixlen}",) for h in hosts))
            if len(found) == count:
                return iter(found)
        self.doc.fail(("subnet",), f"subnet {net} has no room for {count} more links",
                      "give a larger subnet, e.g. 10.0.0.0/16")
        return iter(found)

    def _link(self, where: Where, item: dict, a: str, b: str, addrs: tuple) -> Link:
        ifnames = [names.p2p_ifname(self.ns[b]), names.p2p_ifname(self.ns[a])]
        given = item.get("interfaces")
        if given is not None and self._two(given, where + ("interfaces",), "interface names"):
            for k, name in enumerate(given):
                if name is not None and self.ifname_ok(where + ("interfaces", k), str(name)):
                    ifnames[k] = str(name)
        ends = []
        for k, ns in enumerate((a, b)):
            self.places[(self.ns[ns], ifnames[k])] = where
            ends.append(End(self.ns[ns], ifnames[k], Role.END, tuple(x for x in addrs[k] if x)))
        return self._with_options(where, item, Link(*ends))

    def _with_options(self, where: Where, item: dict, link: Link) -> Link:
        """A link's delay, jitter, loss, rate and mtu, on both ends or (direction) on a only."""
        from veth_wrap.model import linkopts as netem
        from veth_wrap.model import shapes

        given = {key: item[key] for key in LINK_OPTION_KEYS if key in item}
        direction = item.get("direction", "both")
        if direction not in ("both", "a-to-b"):
            self.doc.fail(where + ("direction",), f"{direction!r} is not a direction",
                          "use both (the default) or a-to-b")
        if not given:
            return link
        if "mtu" in given and (isinstance(given["mtu"], bool) or not isinstance(given["mtu"], int)):
            self.doc.fail(where + ("mtu",), "the MTU is a whole number", "e.g. mtu: 9000")
            return link
        words = {k: v if k == "mtu" else str(v) for k, v in given.items()}
        try:
            opts = netem.link_opts(**words)
        except UsageError as exc:
            key = next((k for k in given if exc.message.startswith(f"--{k}")), sorted(given)[0])
            self.doc.fail(where + (key,), exc.message.replace("--", ""), exc.hint)
            return link
        if direction not in ("both", "a-to-b"):
            return link
        return shapes.link_with_opts(link, opts, direction) if opts else link


def lab_name(path: Union[str, Path], prefix: str = "") -> str:
    """Only the lab's name (for down: the rest of the file may be gone or wrong)."""
    doc = _compose(read_text(path, "use 'vethwrap destroy --lab NAME' to remove a lab by name"),
                   _source(path))
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    if not isinstance(name, str):
        source = _source(path)
        raise LabFileError(source, [f"{source}:1: name: missing (add e.g. 'name: demo')"])
    return names.check_lab(prefix + name)
