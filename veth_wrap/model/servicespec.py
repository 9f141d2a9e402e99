"""What a service is asked to be: argv, environment, readiness and limits, checked as given."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

from veth_wrap.errors import UsageError

CGROUP_TOP = "vethwrap"  # the folder of vethwrap's cgroups in the unified hierarchy
SEP = ":"  # joins lab, namespace and service in a cgroup's name; no name may hold it
RESERVED_ENV = "VETHWRAP_"  # vethwrap's own variables: set for the service, never by --env
CPU_PERIOD = 100_000  # microseconds of cpu.max's period
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MIN_MEMORY = 1 << 20  # below a MiB, the program could not even be loaded


@dataclass(frozen=True)
class WaitPort:
    """A port the service must listen on before it counts as up: TCP or UDP."""

    port: int
    proto: str = "tcp"

    def __str__(self) -> str:
        return f"{self.port}/{self.proto}" if self.proto != "tcp" else str(self.port)


@dataclass(frozen=True)
class Limits:
    """cgroup v2 limits: memory.max in bytes, and CPUs as cpu.max's share of a period."""

    memory: Optional[int] = None
    cpus: Optional[float] = None

    def __bool__(self) -> bool:
        return self.memory is not None or self.cpus is not None

    def files(self) -> dict[str, str]:
        """The cgroup files that set these limits, and what goes in each."""
        found = {}
        if self.memory is not None:
            found["memory.max"] = str(self.memory)
            found["memory.swap.max"] = "0"  # a limit that swap could stretch is no limit
        if self.cpus is not None:
            found["cpu.max"] = f"{round(self.cpus * CPU_PERIOD)} {CPU_PERIOD}"
        return found

    def controllers(self) -> list[str]:
        """The controllers these limits need."""
        return [name for name, wanted in (("memory", self.memory), ("cpu", self.cpus))
                if wanted is not None]

    def to_json(self) -> dict:
        """The JSON shape of `limits` (null when not limited)."""
        return {"memory_bytes": self.memory, "cpus": self.cpus}


@dataclass(frozen=True)
class ServiceSpec:
    """A service as asked for: enough to start it again the same way."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    wait_port: Optional[WaitPort] = None
    wait_cmd: tuple[str, ...] = ()
    limits: Limits = Limits()

    def to_json(self) -> dict:
        """The record kept beside the log (and `restart`'s source)."""
        return {"name": self.name, "argv": list(self.argv), "env": dict(self.env),
                "wait_port": str(self.wait_port) if self.wait_port else None,
                "wait_cmd": list(self.wait_cmd), "limits": self.limits.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> ServiceSpec:
        """The spec a record holds; refuses a record that is not one."""
        try:
            limits = data.get("limits") or {}
            port = data.get("wait_port")
            return cls(check_service_name(data["name"]), tuple(str(w) for w in data["argv"]),
                       check_env({str(k): str(v) for k, v in (data.get("env") or {}).items()}),
                       parse_wait_port(port) if port else None,
                       tuple(str(w) for w in data.get("wait_cmd") or ()),
                       Limits(limits.get("memory_bytes"), limits.get("cpus")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"the service record is not one vethwrap wrote ({exc})",
                             "start the service again with vethwrap run") from None


def check_service_name(name: str) -> str:
    """Return a valid service name (it names a log file and a cgroup) or refuse it."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", name or ""):
        raise UsageError(f"service name {name!r} is not allowed",
                         "use 1-64 letters, digits, '_', '.' and '-', not starting with '-' "
                         "or '.'; give one with --name")
    return name


def check_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a service is given, refusing names that are vethwrap's own."""
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise UsageError(f"--env {key!r} is not KEY=VALUE", "e.g. --env PORT=8080")
        if key.upper().startswith(RESERVED_ENV):
            raise UsageError(f"--env {key}: names starting with {RESERVED_ENV} are vethwrap's "
                             "own", "give the variable another name")
    return dict(env)


def parse_wait_port(text: str) -> WaitPort:
    """'80', '80/tcp' or '53/udp'."""
    port, sep, proto = str(text).strip().partition("/")
    proto = proto.lower() if sep else "tcp"
    if not port.isdigit() or not 1 <= int(port) <= 65535 or proto not in ("tcp", "udp"):
        raise UsageError(f"--wait-port {text!r} is not PORT or PORT/tcp or PORT/udp",
                         "e.g. --wait-port 80 or --wait-port 53/udp")
    return WaitPort(int(port), proto)


def parse_memory(text: str) -> int:
    """'64M', '1G', '512k' or bytes -> bytes (binary units, as cgroups count)."""
    found = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not found:
        raise UsageError(f"--memory {text!r} is not a size", "e.g. --memory 64M or 1G")
    size = int(found.group(1)) * UNITS[found.group(2).lower()]
    if size < MIN_MEMORY:
        raise UsageError(f"--memory {text} is below 1M", "give at least 1M")
    return size


def check_cpus(cpus: float) -> float:
    """A CPU share: at least a hundredth of one CPU (cpu.max's smallest quota is 1 ms)."""
    if not cpus >= 0.01 or cpus > 4096:
        raise UsageError(f"--cpus {cpus:g} is out of range", "give 0.01 to 4096, e.g. 0.5")
    return cpus


def cgroup_name(lab: str, netns: str, name: str) -> str:
    """The service's cgroup under CGROUP_TOP: LAB:NS:NAME (':' is in no name, nor in the
    kernel's own files)."""
    return SEP.join((lab, netns, name))


def parse_cgroup_name(folder: str) -> Optional[tuple[str, str, str]]:
    """(lab, namespace, service) from a folder name LAB:NS:NAME, None for anything else."""
    parts = folder.split(SEP)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def service_of(cgroup_path: str) -> Optional[tuple[str, str, str]]:
    """(lab, namespace, service) of a process from its cgroup v2 path (/proc/PID/cgroup)."""
    parts = cgroup_path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == CGROUP_TOP:
        return parse_cgroup_name(parts[1])
    return None
