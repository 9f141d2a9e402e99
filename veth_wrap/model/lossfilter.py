"""Random loss without sch_netem: a classic BPF program on the clsact egress hook.

cls_bpf in direct-action mode runs it on every packet leaving the interface. It draws a
random 32-bit number (SKF_AD_RANDOM) and drops the packet when the number is at most K, so
(K + 1) / 2**32 of the packets go. ARP and ICMPv6 neighbour discovery always pass: losing
them stalls address resolution for seconds, which no real link's loss rate would explain.
"""

from __future__ import annotations

from typing import Optional

from veth_wrap.steps import Kind, Op

PREF = "49152"  # the filter's priority: one fixed value, so replace and read-back find it
_SKF_AD = 0xFFFFF000  # SKF_AD_OFF (-4096) as the unsigned k of a load
_PROTOCOL, _RANDOM = _SKF_AD + 0, _SKF_AD + 56  # SKF_AD_PROTOCOL, SKF_AD_RANDOM
# TC_ACT_STOLEN, not TC_ACT_SHOT: a shot packet reports ENOBUFS to the sender (ping then
# retries and hides the loss); a stolen one vanishes as on a wire
_DROP, _PASS = 4, 0
_K = 9  # the index of the instruction that holds K
_MAX = 2 ** 32


def _program(k: int) -> tuple[tuple[int, int, int, int], ...]:
    """(code, jt, jf, k) instructions; offsets count from the Ethernet header at both hooks."""
    return (
        (0x28, 0, 0, _PROTOCOL),  # A = skb->protocol
        (0x15, 9, 0, 0x0806),  # ARP: pass
        (0x15, 0, 5, 0x86DD),  # not IPv6: draw
        (0x30, 0, 0, 20),  # A = IPv6 next header
        (0x15, 0, 3, 58),  # not ICMPv6: draw
        (0x30, 0, 0, 54),  # A = ICMPv6 type
        (0x35, 0, 1, 133),  # below router solicitation: draw
        (0x25, 0, 3, 137),  # up to redirect, i.e. neighbour discovery: pass
        (0x20, 0, 0, _RANDOM),  # A = a random u32
        (0x25, 1, 0, k),  # A > K: pass
        (0x06, 0, 0, _DROP),
        (0x06, 0, 0, _PASS),
    )


def threshold(fraction: float) -> int:
    """K for a loss fraction above 0: the packets with a draw of at most K are lost."""
    return min(max(round(fraction * _MAX) - 1, 0), _MAX - 1)


def bytecode(fraction: float) -> str:
    """The program in tc's `bytecode` syntax: "N,code jt jf k,..."."""
    program = _program(threshold(fraction))
    return ",".join([str(len(program))] + [" ".join(map(str, insn)) for insn in program])


def ops(ifname: str, fraction: float, verb: str = "add") -> list[Op]:
    """The clsact qdisc and the loss filter on ifname's egress ("add", or "replace" live)."""
    return [Op(Kind.ADD_CLSACT, ("qdisc", verb, "dev", ifname, "clsact"), target=ifname),
            Op(Kind.SET_LOSS_FILTER, ("filter", verb, "dev", ifname, "egress", "pref", PREF,
                                      "handle", "1", "bpf", "da", "bytecode", bytecode(fraction)),
               target=ifname)]


def clear_op(ifname: str) -> Op:
    """Remove the clsact qdisc, and the loss filter with it."""
    return Op(Kind.DEL_CLSACT, ("qdisc", "del", "dev", ifname, "clsact"), target=ifname)


def decode(filters: list) -> Optional[float]:
    """The loss fraction of our filter in `tc -j filter show dev X egress`, if it is there."""
    for item in filters:
        insns = ((item.get("options") or {}).get("bytecode") or {}).get("insns")
        if item.get("kind") != "bpf" or not isinstance(insns, list):
            continue
        try:
            got = tuple((i["code"], i["jt"], i["jf"], i["k"]) for i in insns)
        except (KeyError, TypeError):
            continue
        if len(got) == len(_program(0)) and got == _program(got[_K][3]):
            return (got[_K][3] + 1) / _MAX
    return None
