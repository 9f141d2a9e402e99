"""The CLI's LAN shorthand: `--lan a,b,r --lan r,c,d` as a lab of two LANs and a router."""

from __future__ import annotations

from typing import Optional, Sequence

from veth_wrap.errors import UsageError
from veth_wrap.model import labfile, names
from veth_wrap.model.topology import Lab, Uplink

SOURCE = "--lan"


def lans(groups: Sequence[str], subnet: Optional[str] = None, lab: Optional[str] = None,
         host_bridge: bool = False, uplinks: Sequence[Uplink] = ()) -> Lab:
    """A lab with one bridge per group of comma-separated namespaces, routed as a lab file is.

    The bridges are lan1, lan2...; a namespace in several groups is a router between them.
    """
    members: dict[str, None] = {}
    bridges = []
    for i, group in enumerate(groups):
        found = [name.strip() for name in group.split(",")]
        for name in found:
            names.check_netns(name)
        if len(set(found)) != len(found):
            raise UsageError(f"--lan {group!r} names a namespace twice", "name each once")
        members.update(dict.fromkeys(found))
        bridges.append({"name": f"lan{i + 1}", "members": found,
                        "where": "root" if host_bridge else "hub"})
    if len(members) < 2:
        raise UsageError("a lab needs at least two namespaces",
                         "e.g. vethwrap create --lan a,b,r --lan r,c,d")
    data = {"name": lab or next(iter(members)), "namespaces": list(members), "bridges": bridges}
    if subnet is not None:
        data["subnet"] = subnet
    if uplinks:
        data["uplink"] = {"namespaces": [u.netns for u in uplinks],
                          "forward": [f"{h}:{u.netns}:{p}" for u in uplinks for h, p in u.forwards]}
    return labfile.from_data(data, SOURCE)
