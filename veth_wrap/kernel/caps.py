"""What the running kernel can do for link options: is sch_netem there?

Asked only when a link option needs netem, and answered once per process: from the kernel's
own config (/proc/config.gz or /boot/config-RELEASE) and module list when they are readable,
else by a probe in a throwaway network namespace (`unshare --net`), which changes nothing.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import shutil
from pathlib import Path
from typing import Optional

NETEM = "CONFIG_NET_SCH_NETEM"
_SETTING = re.compile(rf"^{NETEM}=(\w+)$", re.MULTILINE)


def has_ipv6() -> bool:
    """True when this kernel has IPv6 (not built without it, nor booted with ipv6.disable=1)."""
    return os.path.isdir("/proc/sys/net/ipv6")


def neighbour_table(version: int):
    """The kernel's neighbour table of an IP version: gc_thresh3 and the entries in it now.

    None where it cannot be read (the limits live in the initial network namespace only).
    """
    from veth_wrap.model.neighbours import Table

    family = "ipv4" if version == 4 else "ipv6"
    try:
        limit = int(Path(f"/proc/sys/net/{family}/neigh/default/gc_thresh3").read_text())
        stats = Path(f"/proc/net/stat/{'arp' if version == 4 else 'ndisc'}_cache").read_text()
        used = int(stats.splitlines()[1].split()[0], 16)  # the first column, in hex
    except (OSError, ValueError, IndexError):
        return None
    return Table(version, limit, used)


@functools.cache
def has_netem() -> bool:
    """True when this kernel has the netem qdisc (built in, loaded, or loadable)."""
    if Path("/sys/module/sch_netem").is_dir():  # loaded now
        return True
    known = netem_from_files(_config_text(), _modules_dep())
    return known if known is not None else _probe()


def netem_from_files(config: Optional[str], modules_dep: Optional[str]) -> Optional[bool]:
    """The answer from the kernel config and modules.dep; None when they cannot tell."""
    if config is None:
        return None
    setting = _SETTING.search(config)
    if setting is None:
        return False  # "# CONFIG_NET_SCH_NETEM is not set", or no qdiscs at all
    if setting.group(1) == "y":
        return True
    if modules_dep is None:
        return None  # a module, but no list to say whether it is installed
    return "sch_netem.ko" in modules_dep  # Ubuntu ships it in linux-modules-extra


def _config_text() -> Optional[str]:
    release = os.uname().release
    try:
        with gzip.open("/proc/config.gz", "rt") as handle:
            return handle.read()
    except OSError:
        pass
    try:
        return Path(f"/boot/config-{release}").read_text()
    except OSError:
        return None


def _modules_dep() -> Optional[str]:
    try:
        return Path(f"/lib/modules/{os.uname().release}/modules.dep").read_text()
    except OSError:
        return None


def _probe() -> bool:
    """Add a netem qdisc in a namespace that lives as long as one `tc` process."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return True  # cannot tell: tc's own error says so later, made clear by the CLI
    from veth_wrap.run.runner import default_runner

    done = default_runner().run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root",
                                 "netem", "delay", "1ms"], check=False)
    return done.returncode == 0


# CAP_NET_ADMIN and CAP_SYS_ADMIN: `ip netns add` bind-mounts the namespace under /run/netns
NEEDED_CAPS = (1 << 12) | (1 << 21)


def privileged(status: str = "/proc/self/status") -> bool:
    """True when this process may change network namespaces: root, or both capabilities."""
    return os.geteuid() == 0 or effective_caps(status) & NEEDED_CAPS == NEEDED_CAPS


def effective_caps(status: str = "/proc/self/status") -> int:
    """The effective capability set of this process (0 when unreadable)."""
    try:
        with open(status) as lines:
            for line in lines:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0
