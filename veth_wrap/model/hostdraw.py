"""Pictures of a lab over several hosts: each host drawn as a group, VXLAN crossings marked."""

from __future__ import annotations

from veth_wrap.model import hostshare
from veth_wrap.model.hosts import Hosts
from veth_wrap.model.topology import Lab


def add_hosts(lab: Lab, hosts: Hosts, fmt: str, drawn: str) -> str:
    """The drawing of one format with the hosts added as groups."""
    return {"text": _text, "dot": _dot, "mermaid": _mermaid}[fmt](lab, hosts, drawn)


def _crossings(lab: Lab, hosts: Hosts) -> list[str]:
    """One line per link or bridge that VXLAN carries between hosts."""
    lines = []
    for link in hostshare.crossing(lab, hosts):
        lines.append(f"{link.a.netns} ({hosts.of(link.a.netns).name}) ── vxlan "
                     f"{hostshare.vni(lab.name, hostshare.link_key(link))} ── "
                     f"{link.b.netns} ({hosts.of(link.b.netns).name})")
    for _, bridge in hostshare.stretched(lab, hosts):
        spread = hostshare.bridge_hosts(lab, hosts, bridge)
        lines.append(f"bridge {bridge.name} over {', '.join(h.name for h in spread)}: vxlan "
                     f"{hostshare.vni(lab.name, f'bridge/{bridge.name}')}, one bridge per host")
    return lines


def _text(lab: Lab, hosts: Hosts, drawn: str) -> str:
    lines = [drawn.rstrip("\n"), ""]
    lines += [f"host {h.name} ({h.underlay}): {', '.join(h.namespaces) or '-'}"
              for h in hosts.hosts]
    lines += [f"  {line}" for line in _crossings(lab, hosts)]
    return "\n".join(lines) + "\n"


def _dot(lab: Lab, hosts: Hosts, drawn: str) -> str:
    body = drawn.rstrip().rstrip("}")
    for i, host in enumerate(hosts.hosts):
        nodes = " ".join(f'"{ns}";' for ns in host.namespaces)
        body += (f'  subgraph cluster_{i} {{ label="host {host.name}\\n{host.underlay}"; '
                 f"style=dashed; {nodes} }}\n")
    return body + "}\n"


def _mermaid(lab: Lab, hosts: Hosts, drawn: str) -> str:
    ids = {ns: f"n{i}" for i, ns in enumerate(lab.members)}
    lines = [drawn.rstrip("\n")]
    for i, host in enumerate(hosts.hosts):
        lines.append(f'  subgraph h{i}["host {host.name} ({host.underlay})"]')
        lines += [f"    {ids[ns]}" for ns in host.namespaces if ns in ids]
        lines.append("  end")
    return "\n".join(lines) + "\n"
