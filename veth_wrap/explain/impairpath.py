"""A path that is sound but impaired: loss, or delays longer than the probe waits, read by tc.

Read only when nothing else explains a failed ping: one `ip` process reading `tc -j qdisc
show` of the namespaces on the path, and a second only where a clsact qdisc may hold a loss filter.
"""

from __future__ import annotations

from veth_wrap.compile.tc import change_ops
from veth_wrap.explain.findings import Cause, Finding
from veth_wrap.explain.fixes import Fix
from veth_wrap.explain.nets import Nets, Ns, label
from veth_wrap.model import lossfilter as lossbpf
from veth_wrap.model.linkopts import LinkOpts, impairments_text, loss_fraction, rate_bits, time_ms

PROBE_BITS = 8 * (84 + 14)  # a default ping (84 bytes of IP) in its Ethernet frame
_DELAYS = ("delay", "jitter")


def delay_ms(held: dict) -> float:
    """How long one probe can wait on an end's egress: delay, jitter and netem's rate."""
    wait = sum(time_ms(held[key]) for key in _DELAYS if key in held)
    if held.get("qdisc") == "netem" and "rate" in held:  # tbf's burst lets a probe through
        wait += 1000 * PROBE_BITS / rate_bits(held["rate"])
    return wait


def impaired(nets: Nets, crossed: list[tuple[Ns, str]], wait_ms: float,
             checked: list[str]) -> Finding | None:
    """Name the loss (or the delay past wait_ms) on the interfaces the packets cross."""
    from veth_wrap.kernel.tcread import read_all

    ends = [(ns, dev) for ns, dev in dict.fromkeys(crossed) if ns is not None]
    if not ends:
        return None
    held = read_all(list(dict.fromkeys(ns for ns, _ in ends)), nets.counted)
    found = {(ns, dev): held.get(ns, {}).get(dev) for ns, dev in ends}
    found = {end: value for end, value in found.items() if value}
    checked.append("impairments (tc) on " + ", ".join(f"{d} ({label(n)})" for n, d in ends)
                   + ": " + ("; ".join(f"{d} in {label(n)}: {impairments_text(v)}"
                                       for (n, d), v in found.items()) or "none"))
    lossy = {end: v for end, v in found.items() if loss_fraction(v.get("loss", "0%")) > 0}
    total = sum(delay_ms(v) for v in found.values())
    slow = {end: v for end, v in found.items() if delay_ms(v)} if total >= wait_ms else {}
    if not lossy and not slow:
        return None
    return _finding(lossy, slow, total, wait_ms)


def _finding(lossy: dict, slow: dict, total: float, wait_ms: float) -> Finding:
    """The impaired ends, what they hold, and the tc commands that take the impairment off."""
    ends = list(dict.fromkeys([*lossy, *slow]))
    what = [f"loss {lossy[e]['loss']}" if e in lossy else "delay" for e in ends]
    (ns, dev), more = ends[0], len(ends) - 1
    verb = "drops" if ends[0] in lossy else "delays past the probe's wait"
    summary = (f"the link is impaired: {what[0]} on {dev} in {label(ns)} {verb} the packets"
               + (f"; {more} more end{'s are' if more > 1 else ' is'} impaired on the path"
                  if more else ""))
    evidence = [f"{d} in {label(n)} holds {impairments_text({**lossy, **slow}[(n, d)])}, "
                "read with tc -j" for n, d in ends]
    if slow:
        evidence.append(f"the delays on the path add up to {total:g} ms; the probe waits "
                        f"{wait_ms:g} ms")
    fixes = [fix for end in ends
             for fix in _clear(end, {**lossy, **slow}[end], end in lossy, end in slow)]
    return Finding(Cause.LINK_IMPAIRED, summary, evidence, fixes)


def _clear(end: tuple[str, str], held: dict, loss: bool, delay: bool) -> list[Fix]:
    """`tc -n NS ...` that takes loss and/or delay off an end and keeps the rest."""
    ns, dev = end
    if loss and not delay and held.get("filter"):  # the filter holds the loss: the rest stays
        return [["tc", "-n", ns, *lossbpf.clear_op(dev).args]]
    drop = ({"loss"} if loss else set()) | (set(_DELAYS) if delay else set())
    if delay and held.get("qdisc") == "netem":
        drop.add("rate")  # netem's rate delays each packet; a delay fix takes it off too
    keep = {k: held[k] for k in ("delay", "jitter", "loss", "rate") if k in held and k not in drop}
    if "jitter" in keep and "delay" not in keep:
        keep.pop("jitter")
    ops = change_ops(dev, held, LinkOpts(**keep), netem=held.get("qdisc") == "netem")
    return [["tc", "-n", ns, *op.args] for op in ops]
