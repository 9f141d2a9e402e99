"""Link options (delay, jitter, loss, rate, MTU, MAC): validated values in tc's own words.

compile/tc.py turns them into `tc`/`ip` ops; kernel/tcread.py reads them back with `tc -j`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Optional

from veth_wrap.errors import UsageError

_TIME = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s)$")
_LOSS = re.compile(r"^(\d+(?:\.\d+)?)%$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps)$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_RATE_UNIT = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
              "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}
_TIME_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
MTU_RANGE = (68, 65535)


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
    def wants_netem(self) -> bool:
        """True when the options hold something only netem carries fully (delay, loss)."""
        return any((self.delay, self.jitter, self.loss))

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


def loss_fraction(loss: str) -> float:
    """A tc loss word ("1.5%") as a fraction."""
    return float(loss[:-1]) / 100


def impairments_text(found: dict) -> str:
    """Impairments as one phrase: "loss 1% (bpf), rate 10mbit"."""
    note = {"loss": " (bpf)"} if found.get("filter") else {}
    return ", ".join(f"{key} {found[key]}{note.get(key, '')}"
                     for key in ("delay", "jitter", "loss", "rate") if key in found)


def time_ms(word: str) -> float:
    """A tc time word in milliseconds."""
    number, unit = _TIME.match(word).groups()
    return float(number) * _TIME_UNIT[unit]
