"""Pictures of a lab: boxes and lines for the terminal, Graphviz dot, Mermaid."""

from __future__ import annotations

import ipaddress
from typing import Optional

from veth_wrap.model.topology import Bridge, End, Lab, Link

FORMATS = ("text", "dot", "mermaid")
WIDTH = 80


def draw(lab: Lab, fmt: str = "text") -> str:
    """The lab drawn in one of FORMATS (a lab over several hosts: hosts as groups)."""
    drawn = {"text": text, "dot": dot, "mermaid": mermaid}[fmt](lab)
    if lab.extra.get("hosts"):
        from veth_wrap.model.hostdraw import add_hosts

        return add_hosts(lab, lab.extra["hosts"], fmt, drawn)
    return drawn


def _split(lab: Lab) -> tuple[list[Link], list[Link]]:
    """Bridge links (member end first) and point-to-point links."""
    bridged = [link for link in lab.links if link.b.master]
    return bridged, [link for link in lab.links if not link.b.master]


def _place(netns: Optional[str]) -> str:
    return netns or "root"


def _addrs(end: End) -> str:
    return ",".join(end.addresses)


def text(lab: Lab) -> str:
    """Namespaces as boxes, one row per link, the bridge as a hub box spanning its members."""
    head = f"lab {lab.name} ({lab.kind.value})" + (f", subnet {lab.subnet}" if lab.subnet else "")
    lines = [head]
    bridged, p2p = _split(lab)
    for bridge in lab.bridges:  # each LAN a box of its own, its members beside it
        members = [link for link in bridged
                   if (link.b.netns, link.b.master) == (bridge.netns, bridge.name)]
        if members:
            lines += [""] + _hub_rows(bridge, members)
    if p2p:
        lines += [""] + _p2p_rows(p2p)
    linked = {end.netns for end in lab.ends()}
    alone = [ns for ns in lab.members if ns not in linked]
    if alone:
        lines += ["", "not linked: " + ", ".join(alone)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _box(name: str, width: int, joint: str) -> list[str]:
    """A 3-line box; joint is the side the link leaves by: 'right' or 'left'."""
    mid = f"│ {name.ljust(width - 2)} │"
    mid = mid[:-1] + "├" if joint == "right" else "┤" + mid[1:]
    return ["┌" + "─" * width + "┐", mid, "└" + "─" * width + "┘"]


def _middle(near: End, far: End, room: int) -> list[str]:
    """The three lines between two boxes: names above the line, addresses below."""
    top = (near.ifname, far.ifname)
    bottom = (_addrs(near), _addrs(far))
    size = max(room, *(len(a) + len(b) + 4 for a, b in (top, bottom)))
    return [f" {top[0]}".ljust(size - len(top[1]) - 1) + f"{top[1]} ",
            "─" * size,
            f" {bottom[0]}".ljust(size - len(bottom[1]) - 1) + f"{bottom[1]} "]


def _rows(lefts: list[list[str]], pairs: list[tuple[End, End]], right_w: int,
          left_w: int) -> list[str]:
    room = WIDTH - left_w - right_w - 4
    middles = [_middle(near, far, room) for near, far in pairs]
    size = max(len(m[0]) for m in middles)
    middles = [_middle(near, far, size) for near, far in pairs]
    lines = []
    for left, middle, (_, far) in zip(lefts, middles, pairs):
        right = _box(_place(far.netns), right_w, "left")
        lines += [left[k] + middle[k] + right[k] for k in range(3)]
    return lines


def _p2p_rows(links: list[Link]) -> list[str]:
    width = max(len(_place(e.netns)) for link in links for e in (link.a, link.b)) + 2
    lefts = [_box(_place(link.a.netns), width, "right") for link in links]
    return _rows(lefts, [(link.a, link.b) for link in links], width, width)


def _hub_rows(bridge: Bridge, links: list[Link]) -> list[str]:
    nets = dict.fromkeys(str(ipaddress.ip_interface(a).network)
                         for link in links for a in link.a.addresses)
    label = [f"bridge {bridge.name}", f"in {_place(bridge.netns)}"] + list(nets)
    width = max(len(text) for text in label) + 2
    right_w = max(len(_place(link.a.netns)) for link in links) + 2
    inner = label[:3 * len(links)] + [""] * (3 * len(links) - len(label))
    lefts = []
    for i in range(len(links)):
        rows = [f"│ {inner[3 * i + k].ljust(width - 2)} " + ("├" if k == 1 else "│")
                for k in range(3)]
        lefts.append(rows)
    body = _rows(lefts, [(link.b, link.a) for link in links], right_w, width)
    return ["┌" + "─" * width + "┐"] + body + ["└" + "─" * width + "┘"]


def _label(end: End) -> str:
    return "\\n".join(part for part in (end.ifname, _addrs(end)) if part)


def _bridge_id(netns: Optional[str], name: str) -> str:
    """A bridge's node: two labs' hubs, the root and a namespace may each hold one lan."""
    return f"bridge:{_place(netns)}/{name}"


def dot(lab: Lab) -> str:
    """Graphviz: namespaces as boxes, the bridge as an ellipse, ends as edge labels."""
    lines = [f'graph "{lab.name}" {{', "  rankdir=LR;", '  node [shape=box, fontname="monospace"];',
             '  edge [fontname="monospace", fontsize=10];']
    lines += [f'  "{ns}";' for ns in lab.members]
    for bridge in lab.bridges:
        lines.append(f'  "{_bridge_id(bridge.netns, bridge.name)}" [shape=ellipse, '
                     f'label="bridge {bridge.name}\\nin {_place(bridge.netns)}"];')
    for link in lab.links:
        b_node = _bridge_id(link.b.netns, link.b.master) if link.b.master \
            else _place(link.b.netns)
        lines.append(f'  "{_place(link.a.netns)}" -- "{b_node}" '
                     f'[taillabel="{_label(link.a)}", headlabel="{_label(link.b)}"];')
    return "\n".join(lines + ["}"]) + "\n"


def mermaid(lab: Lab) -> str:
    """Mermaid flowchart: one node per namespace, a round node per bridge."""
    ids = {ns: f"n{i}" for i, ns in enumerate(lab.members)}
    lines = ["graph LR"] + [f'  {ids[ns]}["{ns}"]' for ns in lab.members]
    for i, bridge in enumerate(lab.bridges):
        ids[_bridge_id(bridge.netns, bridge.name)] = f"br{i}"
        lines.append(f'  br{i}(("bridge {bridge.name}"))')
    for link in lab.links:
        a = ids.get(link.a.netns, "root")
        b = ids.get(_bridge_id(link.b.netns, link.b.master)) if link.b.master \
            else ids.get(link.b.netns, "root")
        words = f"{link.a.ifname} {_addrs(link.a)} -- {link.b.ifname} {_addrs(link.b)}"
        lines.append(f'  {a} ---|"{" ".join(words.split())}"| {b}')
    return "\n".join(lines) + "\n"
