"""A create asked of a lab the kernel already holds: where the options differ from the kernel.

`create` of a built lab is idempotent when it asks what the kernel holds; asked otherwise it
is refused (exit 2, nothing changed) naming each option that differs, rather than keeping the
old value and adding the new one, or quietly keeping it. `up -f FILE` converges a lab to a
file; `vethwrap link set` changes a live link's options.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Optional

from veth_wrap.errors import ConflictError
from veth_wrap.model.facts import LinkState, NetnsState
from veth_wrap.model.linkopts import loss_fraction, rate_bits, time_ms
from veth_wrap.model.topology import End, Lab

# impairments, compared by value: 1mbit and 1000kbit are the same rate
MEASURES: dict[str, Callable[[str], float]] = {
    "delay": time_ms, "jitter": time_ms, "loss": loss_fraction, "rate": rate_bits}


@dataclass(frozen=True)
class Difference:
    """One option of one end: what the kernel holds and what was asked."""

    option: str
    where: str
    have: str
    want: str


def differences(lab: Lab, facts: dict[str, NetnsState], held: dict) -> list[Difference]:
    """Every option of the lab's ends already built that the kernel holds otherwise.

    held: {namespace: {ifname: impairments}} read back with tc (kernel/tcread.py).
    """
    found = []
    for end in lab.ends():
        link = _built(lab, end, facts)
        if link is not None:
            found += _of_end(end, link, held.get(end.netns, {}).get(end.ifname, {}))
    return found


def _built(lab: Lab, end: End, facts: dict[str, NetnsState]) -> Optional[LinkState]:
    st = facts.get(end.netns) if end.netns else None
    link = st.links.get(end.ifname) if st else None
    return link if link and link.mark and link.mark.lab == lab.name else None


def _of_end(end: End, link: LinkState, impairments: dict) -> list[Difference]:
    where = f"{end.netns}:{end.ifname}"
    found = []
    have, want = _addresses(link.addresses), _addresses(end.addresses)
    if have != want:
        found.append(Difference("addresses", where, ", ".join(have) or "none",
                                ", ".join(want) or "none"))
    opts = end.opts
    if opts and opts.mtu is not None and link.mtu != opts.mtu:
        found.append(Difference("mtu", where, str(link.mtu), str(opts.mtu)))
    if opts and opts.mac is not None and link.mac.lower() != opts.mac:
        found.append(Difference("mac", where, link.mac, opts.mac))
    for option, measure in MEASURES.items():
        asked = getattr(opts, option, None) if opts else None
        now = impairments.get(option)
        if asked is not None and (now is None or abs(measure(now) - measure(asked))
                                  > 1e-6 * max(1.0, measure(asked))):
            found.append(Difference(option, where, now or "none", asked))
    return found


def _addresses(addresses) -> list[str]:
    """Addresses with their prefixes, link-local ones left out (the kernel adds those)."""
    found = {ipaddress.ip_interface(a) for a in addresses}
    return sorted((str(a) for a in found if not a.ip.is_link_local), key=str)


def refuse(lab: Lab, found: list[Difference]) -> None:
    """Raise the one-line refusal that names each option that differs (nothing if none)."""
    if not found:
        return
    parts = []
    for option in dict.fromkeys(d.option for d in found):
        mine = [d for d in found if d.option == option]
        first = mine[0]
        more = f" (and {len(mine) - 1} more ends)" if len(mine) > 1 else ""
        parts.append(f"{option}: {first.where} has {first.have}, asked {first.want}{more}")
    rebuild = f"rebuild it: vethwrap destroy --lab {lab.name}, then create again"
    if any(d.option == "addresses" for d in found):
        how = f"addresses do not change on a built lab: {rebuild}"
    else:
        how = f"change them on the live lab with 'vethwrap link set' (see --help), or {rebuild}"
    raise ConflictError(f"lab {lab.name} is already built with other options; "
                        + "; ".join(parts), how)
