"""Reading impairments back from the kernel: `tc -j` qdiscs and vethwrap's loss filter."""

from __future__ import annotations

import json
from typing import Optional

from veth_wrap.kernel import reader
from veth_wrap.kernel.readings import read_docs
from veth_wrap.model import lossfilter as lossbpf
from veth_wrap.run.runner import Runner, default_runner, in_parts


def read_impairments(namespace: str, runner: Optional[Runner] = None) -> dict[str, dict]:
    """{ifname: impairments} of one namespace, read back with `tc -j`."""
    return read_all([namespace], runner).get(namespace, {})


def read_all(namespaces: list[str], runner: Optional[Runner] = None) -> dict[str, dict]:
    """{namespace: {ifname: impairments}}: qdiscs, then loss filters where a clsact is.

    One `ip -batch` of `netns exec NS tc -j ...` lines per round, and a second round only
    for namespaces that hold a clsact qdisc; a namespace gone meanwhile reads as empty.
    """
    runner = runner or default_runner()
    order = list(dict.fromkeys(namespaces))
    qdiscs = _tc_json([(ns, "qdisc show") for ns in order], runner)
    found = {ns: parse_qdiscs(doc) for ns, doc in zip(order, qdiscs)}
    asks = [(ns, dev) for ns, doc in zip(order, qdiscs) for dev in clsact_devices(doc)]
    filters = _tc_json([(ns, f"filter show dev {dev} egress") for ns, dev in asks], runner)
    for (ns, dev), doc in zip(asks, filters):
        loss = filter_loss(doc or [])
        if loss:
            found[ns].setdefault(dev, {}).update(loss)
    return found


def _tc_json(commands: list[tuple[str, str]], runner: Runner) -> list:
    """One `tc -j` document per (namespace, command), None where the line failed.

    Each line forks a `tc` inside the batch: many lines go to several batches at once.
    """
    return [doc for part in in_parts(commands, lambda part: _tc_batch(part, runner))
            for doc in part]


def _tc_batch(commands: list[tuple[str, str]], runner: Runner) -> list:
    if not commands:
        return []
    return read_docs([reader.tc(words).line(ns) for ns, words in commands], runner,
                     strict=False)


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
