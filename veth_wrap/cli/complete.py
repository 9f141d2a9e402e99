"""Shell completion from the kernel: namespaces, labs, interfaces; cheap and never root-only.

Completion runs on every <TAB>, so it starts at most one `ip` (no `sh`): namespace names come
from /run/netns itself, labs from lo's marks read in one `ip` (root) or from the names of
lab hubs (anyone), interfaces from one `ip -j link show` inside the chosen namespace (root).
"""

from __future__ import annotations

import os

NETNS_DIR = "/run/netns"
HUB = "vethwrap-"


def _namespaces() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []


def complete_namespace(incomplete: str) -> list[str]:
    """Namespaces under /run/netns (lab hubs only when asked for by their prefix)."""
    hubs = incomplete.startswith(HUB)
    return [ns for ns in _namespaces() if ns.startswith(incomplete)
            and (hubs or not ns.startswith(HUB))]


def complete_lab(incomplete: str) -> list[str]:
    """Labs in the kernel: every lab's mark on lo as root, the hubs' labs otherwise."""
    spaces = _namespaces()
    found = {ns[len(HUB):] for ns in spaces if ns.startswith(HUB)}
    if spaces and _privileged():
        found |= _marked_labs(spaces)
    return sorted(lab for lab in found if lab.startswith(incomplete))


def complete_ifname(ctx, incomplete: str) -> list[str]:
    """vethwrap's interfaces inside the namespace already on the command line (root only)."""
    namespace = (ctx.params or {}).get("namespace")
    if not namespace or not _privileged():
        return []
    from veth_wrap.kernel.state import parse_links
    from veth_wrap.run.runner import quick_json

    links = parse_links(quick_json(["ip", "-n", namespace, "-j", "-d", "link", "show"]) or [])
    return sorted(name for name, link in links.items()
                  if link.mark and name != "lo" and name.startswith(incomplete))


def _marked_labs(spaces: list[str]) -> set[str]:
    from veth_wrap.kernel.reader import LOOPBACK
    from veth_wrap.kernel.readings import quick
    from veth_wrap.model.names import Mark

    labs = set()
    for doc in quick(spaces, LOOPBACK):
        mark = Mark.parse(doc[0].get("ifalias")) if doc else None
        if mark:
            labs.add(mark.lab)
    return labs


def _privileged() -> bool:
    from veth_wrap.kernel.caps import privileged

    return privileged()
