"""`vethwrap show`: labs as the kernel holds them, grouped by lab."""

from __future__ import annotations

from typing import Optional

from veth_wrap.cli.output import emit_json, escape, out, table
from veth_wrap.cli.views import state_text
from veth_wrap.kernel.state import NetnsState
from veth_wrap.model.facts import LabView, find_peer
from veth_wrap.model.hostshare import tunnel_info
from veth_wrap.model.linkopts import impairments_text


def shown(views: dict[str, LabView], only: Optional[list[str]]) -> dict[str, list[str]]:
    """{lab: the namespaces show lists for it}, with `only` applied (a hub always shows)."""
    found = {}
    for view in views.values():
        if only is not None and not set(only) & set(view.namespaces()):
            continue
        found[view.name] = [ns for ns in view.namespaces()
                            if only is None or ns in only or ns == view.hub]
    return found


def show_json(facts: dict[str, NetnsState], root: Optional[NetnsState],
              views: dict[str, LabView], only: Optional[list[str]],
              impairments: Optional[dict[str, dict]] = None,
              faults: Optional[tuple[dict, list]] = None) -> dict:
    """The stable JSON shape of `show`; impairments are {namespace: {ifname: read back}};
    faults are ({namespace: partition table}, fault services) as read."""
    labs = []
    for name, spaces in shown(views, only).items():
        view = views[name]
        labs.append({
            "lab": view.name, "topology": view.kind, "hub": view.hub,
            "namespaces": [_netns_json(ns, facts, root, view, (impairments or {}).get(ns, {}))
                           for ns in spaces],
            "root_links": view.root_links,
            "faults": _faults_json(name, spaces, facts, faults or ({}, [])),
        })
    return {"labs": labs}


def _faults_json(lab: str, spaces: list[str], facts: dict, faults: tuple[dict, list]) -> dict:
    """A lab's partitions (who drops whom, by name where an address is a member's) and
    the services that hold faults."""
    tables, services = faults
    owner = {a.split("/")[0]: ns for ns in spaces if ns in facts
             for link in facts[ns].links.values() for a in link.addresses}
    partitions = []
    for ns in spaces:
        table = tables.get(ns)
        if table is not None and table.ours and table.mark.lab == lab:
            partitions.append({**table.to_json(), "drops_from_namespaces": sorted(
                {owner.get(a, a) for a in table.addresses})})
    running = [{"namespace": p.netns, "name": p.service, "pid": p.pid}
               for p in services if p.netns in spaces]
    return {"partitions": partitions, "services": running}


def _netns_json(ns: str, facts: dict[str, NetnsState], root, view: LabView,
                impaired: dict[str, dict]) -> dict:
    st = facts[ns]
    interfaces = []
    for link in st.marked():
        peer = find_peer(link, ns, facts, root)
        interfaces.append({
            "name": link.ifname, "role": link.mark.role, "state": link.operstate,
            "up": link.up, "addresses": list(link.addresses), "master": link.master,
            "peer": {"namespace": peer[0], "interface": peer[1]} if peer else None,
            "mtu": link.mtu, "mac": link.mac, "impairments": impaired.get(link.ifname, {}),
            "tunnel": tunnel_info(link),
        })
    routes = [{"dst": r.get("dst"), "via": r.get("gateway"), "dev": r.get("dev")}
              for r in st.routes if r.get("dev") in {i["name"] for i in interfaces}]
    return {"name": ns, "created": ns in view.created, "interfaces": interfaces,
            "routes": routes}


def print_show(facts, root, views, only, json_out: bool,
               impairments: Optional[dict[str, dict]] = None,
               faults: Optional[tuple[dict, list]] = None) -> None:
    """Print show's result."""
    data = show_json(facts, root, views, only, impairments, faults)
    if json_out:
        emit_json(data)
        return
    if not data["labs"]:
        out().print("no vethwrap labs (build one: vethwrap create ns0 ns1)")
        return
    for lab in data["labs"]:
        out().print(_lab_table(lab))
        for line in _impairment_lines(lab) + _fault_lines(lab["faults"]):
            out().print(line, markup=False, highlight=False)


def _fault_lines(faults: dict) -> list[str]:
    """The faults vethwrap placed, one line each, and how to undo them all."""
    lines = [f"  {p['namespace']} drops what {', '.join(p['drops_from_namespaces'])} "
             f"send{'s' if len(p['drops_from_namespaces']) == 1 else ''} ({p['way']} "
             f"partition, {p['dropped_packets']} packet(s) dropped)"
             for p in faults["partitions"]]
    lines += [f"  {s['namespace']}: service {s['name']} (pid {s['pid']})"
              for s in faults["services"]]
    return ["faults (undo: vethwrap heal):"] + lines if lines else []


def _impairment_lines(lab: dict) -> list[str]:
    """Impairments under the table, one line per end: a column would not fit 80 columns."""
    lines = [f"  {ns['name']} {iface['name']}: {impairments_text(iface['impairments'])}"
             for ns in lab["namespaces"] for iface in ns["interfaces"] if iface["impairments"]]
    return ["impairments:"] + lines if lines else []


def _lab_table(lab: dict):
    """One lab as a table."""
    title = f"lab {lab['lab']} ({lab['topology']})" + (f", bridge in {lab['hub']}"
                                                        if lab["hub"] else "")
    tbl = table(escape(title), ["namespace", "interface", "state", "addresses", "peer",
                                "routes"])
    for ns in lab["namespaces"]:
        for i, iface in enumerate(ns["interfaces"]):
            cells = [ns["name"] if i == 0 else "", iface["name"],
                     state_text(iface["up"], iface["state"]),
                     "\n".join(iface["addresses"]) or "-", _peer_text(iface),
                     _routes_text(ns["routes"], iface["name"])]
            tbl.add_row(*cells)
    return tbl


def _peer_text(iface: dict) -> str:
    peer, tunnel = iface["peer"], iface.get("tunnel")
    text = f"{peer['namespace'] or 'root'}:{peer['interface']}" if peer else "-"
    if tunnel:  # a VXLAN end of a lab over several hosts: its far side is another kernel
        text = f"vxlan {tunnel['vni']} to {tunnel['remote'] or 'the bridge hosts'}"
    return text + (f" (on {iface['master']})" if iface["master"] else "")


def _routes_text(routes: list[dict], dev: str) -> str:
    mine = [f"{r['dst']} via {r['via']}" for r in routes if r["dev"] == dev and r["via"]]
    return "\n".join(mine) or "-"
