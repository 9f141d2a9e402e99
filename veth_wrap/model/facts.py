"""Facts: the kernel's objects as vethwrap's model sees them (read by kernel/, used by compile/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from veth_wrap.model.names import Mark


@dataclass(frozen=True)
class LinkState:
    """One interface as `ip -j -d addr show` reports it."""

    ifname: str
    ifindex: int
    kind: str
    up: bool
    operstate: str
    addresses: tuple[str, ...]
    mark: Optional[Mark] = None
    master: Optional[str] = None
    peer_index: Optional[int] = None
    peer_netnsid: Optional[int] = None
    mtu: int = 0
    mac: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def carrier(self) -> bool:
        """True when the link is up and so is whatever is at its other end."""
        return self.operstate in ("UP", "UNKNOWN")

    @property
    def lower_up(self) -> bool:
        """True when the kernel reports carrier now (LOWER_UP), before operstate catches up.

        The kernel updates operstate through linkwatch, which may lag by up to a second;
        LOWER_UP is set the moment both ends of a veth are up, and traffic flows from then.
        """
        flags = self.raw.get("flags")
        return "LOWER_UP" in flags if flags is not None else self.carrier


@dataclass
class NetnsState:
    """One namespace: its links, routes and whatever else was asked for."""

    name: Optional[str]
    links: dict[str, LinkState] = field(default_factory=dict)
    routes: list[dict] = field(default_factory=list)
    forwarding: Optional[bool] = None

    @property
    def lo_mark(self) -> Optional[Mark]:
        """The namespace's own mark, kept on lo."""
        lo = self.links.get("lo")
        return lo.mark if lo else None

    def marked(self) -> list[LinkState]:
        """The links that carry a vethwrap mark (lo excluded)."""
        return [link for link in self.links.values() if link.mark and link.ifname != "lo"]

    def labs(self) -> set[str]:
        """Every lab that has a mark in this namespace."""
        found = {link.mark.lab for link in self.marked()}
        return found | ({self.lo_mark.lab} if self.lo_mark else set())

    def address_owner(self, address: str) -> Optional[str]:
        """The interface that holds an address (with prefix), if any."""
        ip = address.split("/")[0]
        for link in self.links.values():
            if any(a.split("/")[0] == ip for a in link.addresses):
                return link.ifname
        return None
