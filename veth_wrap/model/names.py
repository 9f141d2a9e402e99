"""Names: what the kernel and vethwrap accept, interface names, and ownership marks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Optional

from veth_wrap.errors import UsageError

IFNAMSIZ = 15  # the kernel's limit on interface names, without the trailing NUL
NETNS_MAX = 64
LAB_MAX = 32
MARK = "vethwrap"
HASH_DIGITS = 6

_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_RULE = "letters, digits, '_', '.' and '-', not starting with '-' or '.'"


def check_netns(name: str) -> str:
    """Return a valid namespace name or refuse it."""
    return _check(name, "namespace name", NETNS_MAX)


def check_lab(name: str) -> str:
    """Return a valid lab name or refuse it."""
    return _check(name, "lab name", LAB_MAX)


def check_ifname(name: str) -> str:
    """Return a valid interface name or refuse it."""
    return _check(name, "interface name", IFNAMSIZ)


def _check(name: str, what: str, limit: int) -> str:
    if not name:
        raise UsageError(f"empty {what}", f"give 1-{limit} characters: {_RULE}")
    if len(name) > limit:
        raise UsageError(f"{what} {_shown(name)} is {len(name)} characters long",
                         f"use at most {limit}")
    if not _SAFE.match(name):
        raise UsageError(f"{what} {_shown(name)} is not allowed", f"use {_RULE}")
    return name


def _shown(name: str) -> str:
    text = name if len(name) <= 40 else name[:37] + "..."
    return repr(text)


def short(name: str, width: int) -> str:
    """Fit a name in width characters, keeping it unique with a hash of the whole.

    Six hex digits: with four, 1,000 cut port names of one bridge would likely clash.
    """
    if len(name) <= width:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:HASH_DIGITS]
    return f"{name[: width - HASH_DIGITS - 1]}-{digest}"


def p2p_ifname(peer: str) -> str:
    """The end, in one namespace, of a veth link to namespace `peer`."""
    return "vw-" + short(peer, IFNAMSIZ - 3)


def member_ifname(lab: str) -> str:
    """A member namespace's end of its link to the lab's bridge."""
    return "vb-" + short(lab, IFNAMSIZ - 3)


def port_ifname(member: str) -> str:
    """The bridge's end of the link to namespace `member`."""
    return "vp-" + short(member, IFNAMSIZ - 3)


def bridge_name(lab: str) -> str:
    """The lab's bridge device."""
    return "vbr-" + short(lab, IFNAMSIZ - 4)


def hub_netns(lab: str) -> str:
    """The namespace that holds a lab's bridge."""
    return f"{MARK}-{lab}"


class Role:
    """What a marked object is to its lab (the third field of a mark)."""

    NETNS = "netns"  # on lo: the namespace was created by vethwrap
    HUB = "hub"  # on lo: the namespace holds the lab's bridge
    END = "end"  # a point-to-point veth end
    MEMBER = "member"  # a member's end of its link to the bridge
    PORT = "port"  # the bridge's end of a link
    BRIDGE = "bridge"
    BORROWED = "borrowed"  # on lo: a namespace that was there before (see Borrowed)


class Borrowed:
    """What create changed in a namespace that was there before, kept in lo's mark so that
    destroy can put it back: role `borrowed=lo-up,ipv4-forward`."""

    LO_UP = "lo-up"  # lo was down
    LO_ADDR = "lo-addr"  # lo had no 127.0.0.1/8 (bringing it up adds it; down keeps it)
    IPV4_FORWARD = "ipv4-forward"
    IPV6_FORWARD = "ipv6-forward"

    @staticmethod
    def role(changes) -> str:
        """The mark's role for these changes."""
        return f"{Role.BORROWED}={','.join(sorted(changes))}"

    @staticmethod
    def changes(role: str) -> frozenset:
        """The changes a borrowed role records (empty for any other role)."""
        head, _, rest = role.partition("=")
        return frozenset(filter(None, rest.split(","))) if head == Role.BORROWED else frozenset()


@dataclass(frozen=True)
class Mark:
    """An ownership mark, kept by the kernel as an interface alias: vethwrap/LAB/ROLE/KIND."""

    lab: str
    role: str
    kind: str

    def text(self) -> str:
        """The alias text."""
        return f"{MARK}/{self.lab}/{self.role}/{self.kind}"

    @staticmethod
    def parse(alias: Optional[str]) -> Optional[Mark]:
        """Read a mark from an alias; None when the alias is not one of ours."""
        if not alias:
            return None
        parts = alias.split("/")
        if len(parts) != 4 or parts[0] != MARK or not all(parts[1:]):
            return None
        return Mark(parts[1], parts[2], parts[3])
