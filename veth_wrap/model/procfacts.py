"""Facts about what runs in the lab: processes in its namespaces, and its name files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.model.names import MARK, Mark
from veth_wrap.model.servicespec import check_service_name  # noqa: F401 (its old home)

# What a process started by `vethwrap run` finds in its environment (its identity is its cgroup)
ENV_SERVICE = "VETHWRAP_SERVICE"
ENV_LAB = "VETHWRAP_LAB"
ENV_NETNS = "VETHWRAP_NETNS"
UPLINK_SERVICE = "uplink"  # the service name of a namespace's uplink gateway (pasta)
HOSTS_ROLE = "hosts"
NETNS_ETC = "/etc/netns"
LOG_ROOT = "/run/vethwrap/logs"


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it, with the network namespace it runs in."""

    pid: int
    netns_inode: int
    argv: tuple[str, ...]
    service: Optional[str] = None  # the service whose cgroup holds it
    lab: Optional[str] = None
    session: int = 0
    parent: int = 0
    started: float = 0.0  # seconds since boot
    netns: Optional[str] = None  # the name under /run/netns, when it has one
    cgroup: Optional[str] = None  # the folder of the service's cgroup (LAB:NS:NAME)

    def command(self) -> str:
        """The command line as one string (for people)."""
        return " ".join(self.argv) or "?"


@dataclass(frozen=True)
class Stopped:
    """A process that destroy or stop ended, and the signal that did it."""

    proc: Proc
    signal: str  # SIGTERM, SIGKILL, or "gone" when it ended before any signal

    def line(self, netns: object) -> str:
        """For people: "stopped NS pid N (name) with SIGTERM", or "ended ... by itself"."""
        named = f" ({self.proc.service})" if self.proc.service else ""
        if self.signal == "gone":
            return f"ended {netns} pid {self.proc.pid}{named} by itself"
        return f"stopped {netns} pid {self.proc.pid}{named} with {self.signal}"

    def to_json(self) -> dict:
        """The JSON shape of `stopped` entries."""
        return {"namespace": self.proc.netns, "pid": self.proc.pid, "name": self.proc.service,
                "command": list(self.proc.argv), "signal": self.signal}


@dataclass(frozen=True)
class NameFile:
    """/etc/netns/NS/hosts as found: whose it is and what it says."""

    netns: str
    content: str = ""
    exists: bool = False
    dir_exists: bool = False
    mark: Optional[Mark] = None
    others: tuple[str, ...] = field(default=())  # other files in /etc/netns/NS
    link: str = ""  # a symbolic link met on the way to the file (never followed)
    mtime_ns: int = 0

    @property
    def ours(self) -> bool:
        """True when vethwrap wrote it (its first line carries the mark)."""
        return self.mark is not None

    @property
    def path(self) -> str:
        """Where it lives."""
        return hosts_path(self.netns)


def hosts_path(netns: str) -> str:
    """The file `ip netns exec NS` binds over /etc/hosts."""
    return f"{NETNS_ETC}/{netns}/hosts"


def namefile_mark(first_line: str) -> Optional[Mark]:
    """The mark in a name file's first line, `# vethwrap/LAB/hosts/KIND: ...`."""
    if not first_line.startswith(f"# {MARK}/"):
        return None
    mark = Mark.parse(first_line[2:].split(":", 1)[0].strip())
    return mark if mark and mark.role == HOSTS_ROLE else None


def log_dir(lab: str, netns: str) -> str:
    """Where the logs of services in one namespace of a lab go."""
    return f"{LOG_ROOT}/{lab}/{netns}"
