"""containerlab topology files (*.clab.yml) read as labs of namespaces.

A node of kind linux becomes a namespace (its image is not used: a namespace shares the
host's files), a node of kind bridge a bridge in the lab's hub namespace, and each veth link
a link whose interface names are kept. Each node's exec commands are split into words and
run inside its namespace once the links are up. What a namespace cannot honour (binds,
ports, other kinds...) is named with its line; it refuses the file unless ignored.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Optional

from veth_wrap.model import safeyaml

TOP_KEYS = {"name", "topology"}
NODE_KEYS = {"kind", "image", "exec", "labels", "group"}
LINK_KEYS = {"endpoints", "type", "mtu", "labels", "vars"}
ENDPOINT_KEYS = {"node", "interface", "ipv4", "ipv6"}
NAMESPACE_KINDS = {"linux"}
BRIDGE_KINDS = {"bridge"}


@dataclass
class Imported:
    """A foreign file as a lab file's plain data, with what could not be carried over."""

    source: str
    data: dict = field(default_factory=dict)
    lines: dict = field(default_factory=dict)  # a key of data -> a line of the source
    problems: list[str] = field(default_factory=list)  # refused, whatever the options
    unsupported: list[str] = field(default_factory=list)  # refused unless ignored
    notes: list[str] = field(default_factory=list)
    execs: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (node, argv)

    def at(self, line: Optional[int], message: str) -> str:
        """A message naming the source and line."""
        return f"{self.source}:{line or 1}: {message}"


def convert(text: str, source: str) -> Imported:
    """The lab a containerlab topology describes (raises safeyaml.Refused on bad YAML)."""
    composed = safeyaml.compose(text)
    reader = _Reader(Imported(source), composed.data, composed.lines)
    reader.read()
    return reader.out


class _Reader:
    """Walks the containerlab document, filling an Imported."""

    def __init__(self, out: Imported, doc: Any, lines: dict) -> None:
        self.out, self.doc, self.src_lines = out, doc, lines
        self.nodes: list[str] = []
        self.bridges: dict[str, dict] = {}
        self.links: list[dict] = []

    def line(self, *where) -> Optional[int]:
        """The line of a key of the source (or of its nearest parent)."""
        while where and where not in self.src_lines:
            where = where[:-1]
        return self.src_lines.get(where)

    def refuse(self, where: tuple, message: str) -> None:
        self.out.problems.append(self.out.at(self.line(*where), message))

    def unsupported(self, where: tuple, message: str) -> None:
        self.out.unsupported.append(self.out.at(self.line(*where), message))

    def read(self) -> None:
        doc = self.doc if isinstance(self.doc, dict) else {}
        if not isinstance(self.doc, dict) or "topology" not in doc:
            self.refuse((), "a containerlab file is a mapping with name and topology")
            return
        for key in sorted(set(doc) - TOP_KEYS):
            self.unsupported((key,), f"{key}: not supported by namespaces")
        topology = doc.get("topology") or {}
        if not isinstance(topology, dict):
            self.refuse(("topology",), "topology: expected a mapping with nodes and links")
            return
        for key in sorted(set(topology) - {"nodes", "links", "defaults", "kinds"}):
            self.unsupported(("topology", key), f"topology.{key}: not supported by namespaces")
        default_kind = self._defaults(topology)
        self._nodes(topology.get("nodes"), default_kind)
        self._links(topology.get("links"))
        self.out.data = {"name": doc.get("name"), "namespaces": self.nodes,
                         "bridges": list(self.bridges.values()), "links": self.links,
                         "routes": {}}  # the exec commands route, as in containerlab
        self.out.lines.update({("name",): self.line("name")})

    def _defaults(self, topology: dict) -> Optional[str]:
        """The default kind; images are noted, anything else in defaults/kinds unsupported."""
        kind = None
        for section in ("defaults", "kinds"):
            value = topology.get(section) or {}
            groups = {"": value} if section == "defaults" else value
            for name, group in (groups.items() if isinstance(groups, dict) else ()):
                where = ("topology", section) + ((name,) if name else ())
                if not isinstance(group, dict):
                    self.refuse(where, f"{'.'.join(map(str, where))}: expected a mapping")
                    continue
                for key in sorted(set(group) - {"kind", "image"}):
                    self.unsupported(where + (key,), f"{'.'.join(map(str, where))}.{key}: "
                                     "not supported by namespaces")
                if section == "defaults":
                    kind = group.get("kind", kind)
                if group.get("image"):
                    self.out.notes.append(self.out.at(self.line(*where, "image"), "images are "
                                          "not used: namespaces share the host's programs"))
        return kind

    def _nodes(self, nodes, default_kind: Optional[str]) -> None:
        if not isinstance(nodes, dict) or not nodes:
            self.refuse(("topology", "nodes"), "topology.nodes: expected a mapping of nodes")
            return
        images = []
        for name, node in nodes.items():
            where = ("topology", "nodes", name)
            node = node if isinstance(node, dict) else {}
            kind = node.get("kind", default_kind)
            for key in sorted(set(node) - NODE_KEYS):
                self.unsupported(where + (key,), f"nodes.{name}.{key}: not supported by "
                                 "namespaces")
            if kind in NAMESPACE_KINDS:
                self.out.lines[("namespaces", len(self.nodes))] = self.line(*where)
                self.nodes.append(str(name))
                images += [str(name)] if node.get("image") else []
                self._exec(name, node.get("exec"), where + ("exec",))
            elif kind in BRIDGE_KINDS:
                self.out.lines[("bridges", len(self.bridges))] = self.line(*where)
                self.bridges[str(name)] = {"name": str(name), "members": [], "addresses": {},
                                           "interfaces": {}, "ports": {}}
            elif kind is None:
                self.refuse(where, f"nodes.{name}: no kind (give kind: linux, or a default "
                            "under topology.defaults)")
            else:
                self.unsupported(where + ("kind",), f"nodes.{name}.kind: {kind!r} is not "
                                 "supported by namespaces (linux and bridge are)")
        if images:
            self.out.notes.append(f"{self.out.source}: images are not used: namespaces share "
                                  f"the host's files and programs ({', '.join(images)})")
        if self.bridges:
            self.out.notes.append(f"{self.out.source}: bridges live in the lab's own namespace, "
                                  "not on the host")

    def _exec(self, name: str, value, where: tuple) -> None:
        for i, command in enumerate(value if isinstance(value, list) else []):
            try:
                words = tuple(shlex.split(str(command)))
            except ValueError as exc:
                self.refuse(where + (i,), f"nodes.{name}.exec[{i}]: {exc}")
                continue
            if words:
                self.out.execs.append((str(name), words))
        if value is not None and not isinstance(value, list):
            self.refuse(where, f"nodes.{name}.exec: expected a list of commands")

    def _links(self, links) -> None:
        if links is not None and not isinstance(links, list):
            self.refuse(("topology", "links"), "topology.links: expected a list of links")
        for i, link in enumerate(links if isinstance(links, list) else []):
            where = ("topology", "links", i)
            if not isinstance(link, dict):
                self.refuse(where, f"links[{i}]: expected a mapping with endpoints")
                continue
            for key in sorted(set(link) - LINK_KEYS):
                self.unsupported(where + (key,), f"links[{i}].{key}: not supported")
            if link.get("type", "veth") != "veth":
                self.unsupported(where + ("type",), f"links[{i}].type: {link['type']!r} is "
                                 "not supported by namespaces (veth is)")
                continue
            given = link.get("endpoints")
            ends = [self._endpoint(e, where + ("endpoints", k), i)
                    for k, e in enumerate(given if isinstance(given, list) else [])]
            if len(ends) != 2 or None in ends:
                if len(ends) != 2:
                    self.refuse(where, f"links[{i}].endpoints: expected two endpoints")
                continue
            self._link(ends, link, where, i)

    def _endpoint(self, value, where: tuple, i: int) -> Optional[dict]:
        """An endpoint as {node, interface, ipv4, ipv6}: "node:ifname" or the mapping."""
        if isinstance(value, str) and value.count(":") == 1:
            node, ifname = value.split(":")
            value = {"node": node, "interface": ifname}
        if not isinstance(value, dict) or "node" not in value or "interface" not in value:
            self.refuse(where, f"links[{i}].endpoints: {value!r} is not node:interface")
            return None
        for key in sorted(set(value) - ENDPOINT_KEYS):
            self.unsupported(where + (key,), f"links[{i}] endpoint {key}: not supported")
        node = str(value["node"])
        if node not in self.nodes and node not in self.bridges:
            self.unsupported(where, f"links[{i}]: {node!r} is not a linux or bridge node "
                             "(host, mgmt-net, macvlan and the like are not supported)")
            return None
        found = [value.get(k) for k in ("ipv4", "ipv6") if value.get(k)]
        return {"node": node, "interface": str(value["interface"]), "addresses": found}

    def _link(self, ends: list[dict], link: dict, where: tuple, i: int) -> None:
        bridged = [e for e in ends if e["node"] in self.bridges]
        if len(bridged) == 2:
            self.unsupported(where, f"links[{i}]: a link between two bridges is not supported")
            return
        if bridged:
            member = next(e for e in ends if e["node"] not in self.bridges)
            bridge = self.bridges[bridged[0]["node"]]
            bridge["members"].append(member["node"])
            bridge["interfaces"][member["node"]] = member["interface"]
            bridge["ports"][member["node"]] = bridged[0]["interface"]
            bridge["addresses"][member["node"]] = (member["addresses"] or [None])[0]
            return
        self.out.lines[("links", len(self.links))] = self.line(*where)
        item = {"between": [e["node"] for e in ends],
                "interfaces": [e["interface"] for e in ends],
                "addresses": [e["addresses"] or None for e in ends]}
        if "mtu" in link:
            item["mtu"] = link["mtu"]
        self.links.append(item)
