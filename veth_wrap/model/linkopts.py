"""Link options (delay, jitter, loss, rate, MTU, MAC) -> `tc`/`ip` ops; read back via `tc -j`.

netem carries delay, jitter and loss where the kernel has it. Without sch_netem, loss comes
from a classic BPF filter on the clsact egress hook (lossbpf) and rate from tbf; delay has no
stand-in, so it is refused before anything changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Optional

from veth_wrap.errors import PreflightError, UsageError
from veth_wrap.kernel.caps import has_netem
from veth_wrap.model import lossfilter as lossbpf
from veth_wrap.steps import Op

_TIME = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s)$")
_LOSS = re.compile(r"^(\d+(?:\.\d+)?)%$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps)$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_RATE_UNIT = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
              "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}
_TIME_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
MTU_RANGE = (68, 65535)
NO_NETEM = "Specified qdisc kind is unknown"


@dataclass(frozen=True)
class LinkOpts:
    """What one veth end should look like: impairments on its egress, MTU and MAC.

    Values are tc's own words ("10ms", "1%", "10mbit"), validated by `link_opts`.
    """

    delay: Optional[str] = None
    jitter: Optional[str] = None
    loss: Optional[str] = None
    rate: Optional[str] = None
    mtu: Optional[int] = None
    mac: Optional[str] = None

    @property
    def impaired(self) -> bool:
        """True when the end needs a qdisc."""
        return any((self.delay, self.jitter, self.loss, self.rate))

    def to_json(self) -> dict:
        """The options that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


def link_opts(delay: Optional[str] = None, jitter: Optional[str] = None,
              loss: Optional[str] = None, rate: Optional[str] = None,
              mtu: Optional[int] = None, mac: Optional[str] = None) -> Optional[LinkOpts]:
    """Validate options as a user gave them; None when none is given."""
    opts = LinkOpts(_word(delay, _TIME, "--delay", "10ms"), _word(jitter, _TIME, "--jitter", "2ms"),
                    _word(loss, _LOSS, "--loss", "1%"), _word(rate, _RATE, "--rate", "10mbit"),
                    mtu, mac.lower() if mac else None)
    if opts.jitter and not opts.delay:
        raise UsageError("--jitter varies a delay, and no --delay is given", "add --delay 10ms")
    if opts.loss and float(opts.loss[:-1]) > 100:
        raise UsageError(f"--loss {opts.loss} is above 100%", "give a loss from 0% to 100%")
    if mtu is not None and not MTU_RANGE[0] <= mtu <= MTU_RANGE[1]:
        raise UsageError(f"--mtu {mtu} is outside {MTU_RANGE[0]}..{MTU_RANGE[1]}",
                         "give an MTU such as 1500 or 9000")
    if opts.mac and (not _MAC.match(opts.mac) or int(opts.mac[:2], 16) & 1):
        raise UsageError(f"--mac {mac} is not a unicast MAC address",
                         "write it like 02:00:00:00:00:01")
    return opts if opts.to_json() else None


def _word(value: Optional[str], pattern: re.Pattern, option: str, example: str) -> Optional[str]:
    if value is None:
        return None
    value = value.strip().lower()
    if not pattern.match(value):
        raise UsageError(f"{option} {value!r} is not understood", f"write it like {example}")
    return value


def rate_bits(rate: str) -> float:
    """A tc rate word in bits per second."""
    number, unit = _RATE.match(rate).groups()
    return float(number) * _RATE_UNIT[unit]


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

    netem None asks the kernel (only when opts hold something netem would carry).
    """
    if not (opts.delay or opts.jitter or opts.loss):
        return False
    available = has_netem() if netem is None else netem
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
    ops = [Op(("qdisc", "add", "dev", ifname, "root") + words)] if words else []
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
        ops.append(Op(("qdisc", "replace", "dev", ifname, "root") + words))
    elif have.get("qdisc"):
        ops.append(clear_op(ifname))
    if _bpf_loss(want, use):
        ops += lossbpf.ops(ifname, loss_fraction(want.loss), "replace")
    elif have.get("filter"):
        ops.append(lossbpf.clear_op(ifname))
    return ops


def clear_op(ifname: str) -> Op:
    """The `tc` op that removes vethwrap's root qdisc (the kernel's default comes back)."""
    return Op(("qdisc", "del", "dev", ifname, "root"))


def loss_fraction(loss: str) -> float:
    """A tc loss word ("1.5%") as a fraction."""
    return float(loss[:-1]) / 100


def ip_ops(ifname: str, opts: LinkOpts) -> list[Op]:
    """`ip` ops for MTU and MAC (a MAC is set while the link is down on create)."""
    ops = []
    if opts.mtu is not None:
        ops.append(Op(("link", "set", "dev", ifname, "mtu", str(opts.mtu))))
    if opts.mac is not None:
        ops.append(Op(("link", "set", "dev", ifname, "address", opts.mac)))
    return ops


def parse_qdiscs(data) -> dict[str, dict]:
    """`tc -j qdisc show` (text, or its parsed list) -> {ifname: impairments} of netem/tbf."""
    found: dict[str, dict] = {}
    for item in _items(data):
        if not item.get("root") or item.get("kind") not in ("netem", "tbf"):
            continue
        found[item.get("dev", "")] = _impairments(item["kind"], item.get("options", {}))
    return found


def clsact_devices(data) -> list[str]:
    """`tc -j qdisc show` -> the interfaces with a clsact qdisc (where a loss filter may be)."""
    return [item.get("dev", "") for item in _items(data) if item.get("kind") == "clsact"]


def filter_loss(filters: list) -> Optional[dict]:
    """`tc -j filter show dev X egress` -> the loss of vethwrap's BPF filter, if it is there."""
    fraction = lossbpf.decode(filters)
    if fraction is None:
        return None
    return {"loss": f"{round(fraction * 100, 4):g}%", "filter": "bpf"}


def impairments_text(found: dict) -> str:
    """Impairments as one phrase: "loss 1% (bpf), rate 10mbit"."""
    note = {"loss": " (bpf)"} if found.get("filter") else {}
    return ", ".join(f"{key} {found[key]}{note.get(key, '')}"
                     for key in ("delay", "jitter", "loss", "rate") if key in found)


def _items(data) -> list:
    if isinstance(data, str):
        return json.loads(data) if data.strip() else []
    return data or []


def _impairments(kind: str, options: dict) -> dict:
    """netem's JSON gives seconds and fractions, tbf's bytes per second: make them tc words."""
    result: dict = {"qdisc": kind}
    delay = options.get("delay") or {}
    if delay.get("delay"):
        result["delay"] = _ms(delay["delay"])
        if delay.get("jitter"):
            result["jitter"] = _ms(delay["jitter"])
    loss = (options.get("loss-random") or {}).get("loss")
    if loss:
        result["loss"] = f"{round(loss * 100, 4):g}%"
    rate = options.get("rate")
    rate = rate.get("rate") if isinstance(rate, dict) else rate
    if rate:
        result["rate"] = _rate_text(rate * 8)
    return result


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000, 3):g}ms"


def _rate_text(bits: float) -> str:
    for unit, size in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bits >= size:
            return f"{round(bits / size, 3):g}{unit}"
    return f"{bits:g}bit"


def time_ms(word: str) -> float:
    """A tc time word in milliseconds."""
    number, unit = _TIME.match(word).groups()
    return float(number) * _TIME_UNIT[unit]
