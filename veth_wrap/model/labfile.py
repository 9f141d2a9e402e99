"""Lab files: YAML that names a lab, its namespaces, links, bridge, routes -> a validated Lab."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from veth_wrap.errors import UsageError
from veth_wrap.model import hosts as hostfile
from veth_wrap.model import labservices, lanroutes, names, safeyaml
from veth_wrap.model.labparts import BuilderParts, Where
from veth_wrap.model.linkparts import LINK_KEYS, LinkParts  # noqa: F401 (LINK_KEYS: tests)
from veth_wrap.model.topology import (
    USABLE_HINT,
    Kind,
    Lab,
    Link,
    unusable,
)

KEYS = {"name", "subnet", "namespaces", "links", "bridges", "routes", "forwarding", "uplink",
        *hostfile.KEYS, labservices.KEY}


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
    parts: list[tuple[str, str, str]] = field(default_factory=list)  # (key, message, hint)

    def fail(self, where: Where, message: str, hint: str = "") -> None:
        """Record a problem at the line of `where` (or of its nearest parent)."""
        at = where
        while at and at not in self.lines:
            at = at[:-1]
        line = self.lines.get(at, 1)
        key = _key_text(where) or "(top)"
        self.problems.append(f"{self.source}:{line}: {key}: {message}"
                             + (f" ({hint})" if hint else ""))
        self.parts.append((key, message, hint))


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
    return with_prefix(lab, prefix)


def with_prefix(lab: Lab, prefix: str) -> Lab:
    """The lab, knowing the prefix its names got: its name files list the names unprefixed."""
    if not prefix:
        return lab
    import dataclasses

    return dataclasses.replace(lab, extra={**lab.extra, "prefix": prefix})


def from_data(data: dict, source: str) -> Lab:
    """Validate a lab given as plain data (the CLI's shorthand) as a file is; the first
    problem is refused as a UsageError naming source and key (there is no line)."""
    doc = _Doc(source, data)
    lab = _Builder(doc, "").build()
    if doc.parts or lab is None:
        key, message, hint = doc.parts[0] if doc.parts else ("", "nothing could be read", "")
        raise UsageError(f"{source} {key}: {message}", hint or "check the values given")
    return lab


def from_doc(data: dict, lines: dict, source: str, prefix: str = "",
             problems: Optional[list[str]] = None) -> Lab:
    """Validate a lab converted from another format: lines map its keys to the source's
    lines; problems already found there are reported first, with the builder's."""
    doc = _Doc(source, data, lines, list(problems or []))
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


class _Builder(BuilderParts, LinkParts):
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
        self.given = lanroutes.given_networks(data)  # the pool leaves these alone
        bridges, hub = self._bridges(data.get("bridges"))
        self._links(data.get("links"))
        routes = self._routes(data.get("routes"))
        forwarding = self._forwarding(data.get("forwarding"))
        self._check_ifnames()
        graph = lanroutes.Graph.of(self.links)
        for place, message in graph.overlaps(self._shared_net()):
            self.doc.fail(self.places.get(place, ("links",)), message,
                          "give each LAN and link a subnet of its own")
        uplinks = self._uplinks(data.get("uplink"))
        if "routes" not in data:  # with an uplink, only its namespaces get a way out
            routes = graph.routes(defaults=not uplinks)
        forwarding += [ns for ns in graph.routers() if ns not in forwarding]
        hosts = hostfile.read(self, data)  # None without a hosts section
        services = labservices.read(self, data)
        if self.doc.problems:
            return None
        return Lab(self.name, Kind.CUSTOM, tuple(self.ns[m] for m in self.members),
                   tuple(self.links), hub=hub, bridges=tuple(bridges),
                   routes=tuple(routes), forwarding=tuple(forwarding),
                   subnet=str(self.subnet) if self.subnet else None,
                   extra={key: value for key, value in (("hosts", hosts),
                                                        (labservices.KEY, services)) if value},
                   uplinks=uplinks)

    def _shared_net(self):
        """The subnet a lone bridge shares with the links' /30s (they overlap by design)."""
        shared = [h.net for h in getattr(self, "_heads", []) if h.shared]
        return shared[0] if shared else None

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


def lab_name(path: Union[str, Path], prefix: str = "") -> str:
    """Only the lab's name (for down: the rest of the file may be gone or wrong)."""
    doc = _compose(read_text(path, "use 'vethwrap destroy --lab NAME' to remove a lab by name"),
                   _source(path))
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    if not isinstance(name, str):
        source = _source(path)
        raise LabFileError(source, [f"{source}:1: name: missing (add e.g. 'name: demo')"])
    return names.check_lab(prefix + name)
