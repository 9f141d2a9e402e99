"""`vethwrap show`: labs as the kernel holds them, grouped by lab."""

from __future__ import annotations

from typing import Optional

from .inventory import LabView, peer_of
from .output import emit_json, escape, out, table
from .state import NetnsState
from .views import state_text


def show_json(facts: dict[str, NetnsState], root: Optional[NetnsState],
              views: dict[str, LabView], only: Optional[list[str]]) -> dict:
    """The stable JSON shape of `show`."""
    labs = []
    for view in views.values():
        spaces = [ns for ns in view.members + ([view.hub] if view.hub else [])
                  if only is None or ns in only or ns == view.hub]
        if only is not None and not set(only) & set(view.members + [view.hub]):
            continue
        labs.append({
            "lab": view.name, "topology": view.kind, "hub": view.hub,
            "namespaces": [_netns_json(ns, facts, root, view) for ns in spaces],
            "root_links": view.root_links,
        })
    return {"labs": labs}


def _netns_json(ns: str, facts: dict[str, NetnsState], root, view: LabView) -> dict:
    st = facts[ns]
    interfaces = []
    for link in st.marked():
        peer = peer_of(link, ns, facts, root)
        interfaces.append({
            "name": link.ifname, "role": link.mark.role, "state": link.operstate,
            "up": link.up, "addresses": list(link.addresses), "master": link.master,
            "peer": {"namespace": peer[0], "interface": peer[1]} if peer else None,
            "mtu": link.mtu, "mac": link.mac,
        })
    routes = [{"dst": r.get("dst"), "via": r.get("gateway"), "dev": r.get("dev")}
              for r in st.routes if r.get("dev") in {i["name"] for i in interfaces}]
    return {"name": ns, "created": ns in view.created, "interfaces": interfaces,
            "routes": routes}


def print_show(facts, root, views, only, json_out: bool) -> None:
    """Print show's result."""
    data = show_json(facts, root, views, only)
    if json_out:
        emit_json(data)
        return
    if not data["labs"]:
        out().print("no vethwrap labs (build one: vethwrap create ns0 ns1)")
        return
    for lab in data["labs"]:
        title = f"lab {lab['lab']} ({lab['topology']})" + (f", bridge in {lab['hub']}"
                                                            if lab["hub"] else "")
        tbl = table(escape(title), ["namespace", "interface", "state", "addresses", "peer",
                                    "routes"])
        for ns in lab["namespaces"]:
            for i, iface in enumerate(ns["interfaces"]):
                tbl.add_row(ns["name"] if i == 0 else "", iface["name"],
                            state_text(iface["up"], iface["state"]),
                            ", ".join(iface["addresses"]) or "-", _peer_text(iface),
                            _routes_text(ns["routes"], iface["name"]))
        out().print(tbl)


def _peer_text(iface: dict) -> str:
    peer = iface["peer"]
    text = f"{peer['namespace'] or 'root'}:{peer['interface']}" if peer else "-"
    return text + (f" (on {iface['master']})" if iface["master"] else "")


def _routes_text(routes: list[dict], dev: str) -> str:
    mine = [f"{r['dst']} via {r['via']}" for r in routes if r["dev"] == dev and r["via"]]
    return "\n".join(mine) or "-"
