"""Uplinks as lab files and the CLI give them: namespaces, and port forwards HOST:NS:PORT."""

from __future__ import annotations

from typing import Callable, Sequence

from veth_wrap.errors import UsageError
from veth_wrap.model.topology import Uplink

KEYS = {"namespaces", "forward"}


def forward(text: str) -> tuple[int, str, int]:
    """'8080:web:80' -> (8080, 'web', 80): host port 8080 reaches port 80 of web."""
    parts = str(text).split(":")
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"forward {text!r} is not HOSTPORT:NAMESPACE:PORT",
                         "e.g. 8080:web:80")
    ports = []
    for word in (parts[0], parts[2]):
        if not word.isdigit() or not 1 <= int(word) <= 65535:
            raise UsageError(f"forward {text!r}: {word!r} is not a port (1-65535)",
                             "e.g. 8080:web:80")
        ports.append(int(word))
    return ports[0], parts[1], ports[1]


def build(namespaces: Sequence[str], forwards: Sequence[tuple[int, str, int]],
          name_of: Callable[[str], str] = str) -> tuple[Uplink, ...]:
    """One Uplink per namespace (a forward's target gets one too), in order given.

    name_of maps a name as written to the namespace's full name (a prefix, for files).
    """
    hosts_ports: set[int] = set()
    found: dict[str, list[tuple[int, int]]] = {name: [] for name in namespaces}
    for host_port, name, port in forwards:
        if host_port in hosts_ports:
            raise UsageError(f"host port {host_port} is forwarded twice", "forward it once")
        hosts_ports.add(host_port)
        found.setdefault(name, []).append((host_port, port))
    return tuple(Uplink(name_of(name), tuple(ports)) for name, ports in found.items())
