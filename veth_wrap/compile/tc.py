"""Link options -> `tc` and `ip` ops: netem, tbf, the loss filter, MTU and MAC. No I/O.

netem carries delay, jitter and loss where the kernel has it. Without sch_netem, loss comes
from a classic BPF filter on the clsact egress hook (model/lossfilter) and rate from tbf;
delay has no stand-in, so it is refused before anything changes. Whether the kernel has
netem is a fact the caller reads (kernel/caps) and passes in.
"""

from __future__ import annotations

from typing import Optional

from veth_wrap.errors import PreflightError
from veth_wrap.model import lossfilter as lossbpf
from veth_wrap.model.linkopts import LinkOpts, loss_fraction, rate_bits
from veth_wrap.steps import Kind, Op


def qdisc_words(opts: LinkOpts, mtu: int = 1500,
                netem: bool = True) -> Optional[tuple[str, ...]]:
    """The root qdisc for opts: netem for delay/loss (with its rate), else tbf for a rate.

    None when the root needs no qdisc (no rate, and no netem for the rest).
    """
    if netem and (opts.delay or opts.loss):
        words = ("netem",)
        if opts.delay:
            words += ("delay", opts.delay) + ((opts.jitter,) if opts.jitter else ())
        if opts.loss:
            words += ("loss", opts.loss)
        return words + (("rate", opts.rate) if opts.rate else ())
    if not opts.rate:
        return None
    # netem's rate needs sch_netem; tbf shapes a plain rate on any kernel
    burst = max(int(rate_bits(opts.rate) / 8 / 100), 2 * (opts.mtu or mtu) + 64, 16384)
    return ("tbf", "rate", opts.rate, "burst", str(burst), "latency", "100ms")


def uses_netem(opts: LinkOpts, netem: Optional[bool] = None) -> bool:
    """Whether opts go on with netem; refuse delay and jitter on a kernel without it.

    netem is whether the kernel has sch_netem (the caller asks kernel/caps).
    """
    if not (opts.delay or opts.jitter or opts.loss):
        return False
    available = True if netem is None else netem
    if (opts.delay or opts.jitter) and not available:
        raise PreflightError(
            "this kernel lacks sch_netem (CONFIG_NET_SCH_NETEM), which --delay and --jitter "
            "need; nothing was changed",
            "boot a kernel with CONFIG_NET_SCH_NETEM=y or =m (Debian/Ubuntu: install "
            "linux-modules-extra-$(uname -r), then modprobe sch_netem), or leave out --delay "
            "and --jitter: --loss and --rate work without netem")
    return available


def _bpf_loss(opts: LinkOpts, netem: bool) -> bool:
    """True when opts' loss needs the BPF filter (no netem, and a loss above 0%)."""
    return bool(opts.loss) and not netem and loss_fraction(opts.loss) > 0


def tc_ops(ifname: str, opts: LinkOpts, netem: Optional[bool] = None) -> list[Op]:
    """`tc` ops (words after `tc -n NS`) that put opts' impairments on a new end's egress."""
    if not opts.impaired:
        return []
    use = uses_netem(opts, netem)
    words = qdisc_words(opts, netem=use)
    ops = [Op(Kind.SET_ROOT_QDISC, ("qdisc", "add", "dev", ifname, "root") + words,
              target=ifname)] if words else []
    if _bpf_loss(opts, use):
        ops += lossbpf.ops(ifname, loss_fraction(opts.loss), "add")
    return ops


def change_ops(ifname: str, have: dict, want: LinkOpts,
               netem: Optional[bool] = None) -> list[Op]:
    """`tc` ops that take a live end from `have` (read back) to `want`, without rebuilding it."""
    use = uses_netem(want, netem)
    words = qdisc_words(want, netem=use) if want.impaired else None
    ops = []
    if words:
        ops.append(Op(Kind.SET_ROOT_QDISC, ("qdisc", "replace", "dev", ifname, "root") + words,
                      target=ifname))
    elif have.get("qdisc"):
        ops.append(clear_op(ifname))
    if _bpf_loss(want, use):
        ops += lossbpf.ops(ifname, loss_fraction(want.loss), "replace")
    elif have.get("filter"):
        ops.append(lossbpf.clear_op(ifname))
    return ops


def clear_op(ifname: str) -> Op:
    """The `tc` op that removes vethwrap's root qdisc (the kernel's default comes back)."""
    return Op(Kind.DEL_ROOT_QDISC, ("qdisc", "del", "dev", ifname, "root"), target=ifname)


def ip_ops(ifname: str, opts: LinkOpts) -> list[Op]:
    """`ip` ops for MTU and MAC (a MAC is set while the link is down on create)."""
    ops = []
    if opts.mtu is not None:
        ops.append(Op(Kind.SET_MTU, ("link", "set", "dev", ifname, "mtu", str(opts.mtu)),
                      target=ifname))
    if opts.mac is not None:
        ops.append(Op(Kind.SET_MAC, ("link", "set", "dev", ifname, "address", opts.mac),
                      target=ifname))
    return ops
