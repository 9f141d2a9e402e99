"""Change a live link in place (tc qdisc replace, ip link set) and read it back; run in a netns."""

from __future__ import annotations

import dataclasses
import shutil
from typing import Optional

from veth_wrap.errors import UsageError
from veth_wrap.kernel import inventory, state
from veth_wrap.model.linkopts import (
    LinkOpts,
    change_ops,
    clsact_devices,
    filter_loss,
    ip_ops,
    parse_qdiscs,
)
from veth_wrap.run.runner import Runner, default_runner, exec_replace, in_batches

EXIT_NOT_FOUND = 127  # what a shell returns for a command it cannot find


def change(namespace: str, ifname: str, opts: Optional[LinkOpts], clear: bool,
           runner: Optional[Runner] = None) -> dict:
    """Apply opts to one vethwrap end (MTU on both ends of the veth) and return its state."""
    runner = runner or default_runner()
    facts, root = inventory.scan(None, runner, routes=False)
    link = _vethwrap_link(facts, namespace, ifname)
    have = read_impairments(namespace, runner).get(ifname, {})
    opts = opts or LinkOpts()
    want = opts if clear else _merged(have, opts)
    tc = change_ops(ifname, have, want) if clear or opts.impaired else []  # may refuse
    if opts.mtu is not None:
        peer = inventory.peer_of(link, namespace, facts, root)
        if peer is not None:
            _run_ip(peer[0], ip_ops(peer[1], LinkOpts(mtu=opts.mtu)), runner)
    _run_ip(namespace, ip_ops(ifname, opts), runner)
    _run_tc(namespace, tc, runner)
    return describe(namespace, ifname, runner)


def _vethwrap_link(facts: dict, namespace: str, ifname: str):
    """The link, refused (exit 2, nothing changed) unless it is a vethwrap veth end."""
    if namespace not in facts:
        raise UsageError(f"namespace {namespace!r} does not exist", "see 'vethwrap show'")
    link = facts[namespace].links.get(ifname)
    if link is None or link.mark is None or link.kind != "veth":
        raise UsageError(f"{ifname} in {namespace} is not a veth end vethwrap made",
                         f"see 'vethwrap show {namespace}'")
    return link


def _merged(have: dict, new: LinkOpts) -> LinkOpts:
    """Impairments already on the link, with the new ones over them: set one, keep the rest."""
    keep = {key: have[key] for key in ("delay", "jitter", "loss", "rate") if key in have}
    keep.update({k: v for k, v in new.to_json().items() if k in keep or k in
                 ("delay", "jitter", "loss", "rate")})
    return dataclasses.replace(LinkOpts(**keep), mtu=new.mtu)


def _run_ip(namespace: Optional[str], ops, runner: Runner) -> None:
    for op in ops:
        runner.run(["ip", *(("-n", namespace) if namespace else ()), *op.args])


def _run_tc(namespace: str, ops, runner: Runner) -> None:
    for op in ops:
        runner.run(["tc", "-n", namespace, *op.args])


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
    return [doc for part in in_batches(commands, lambda part: _tc_batch(part, runner))
            for doc in part]


def _tc_batch(commands: list[tuple[str, str]], runner: Runner) -> list:
    if not commands:
        return []
    return state.read_docs([f"netns exec {ns} tc -j {words}" for ns, words in commands],
                           runner, strict=False)


def describe(namespace: str, ifname: str, runner: Optional[Runner] = None) -> dict:
    """One end as the kernel holds it now: ifindex, MTU, MAC and impairments."""
    runner = runner or default_runner()
    link = state.read([namespace], runner, routes=False)[namespace].links[ifname]
    return {"namespace": namespace, "interface": ifname, "ifindex": link.ifindex,
            "mtu": link.mtu, "mac": link.mac,
            "impairments": read_impairments(namespace, runner).get(ifname, {})}


def run_in(namespace: str, argv: list[str]) -> int:
    """Replace vethwrap with `ip netns exec NS argv`; returns only for a command not found."""
    if namespace not in state.list_netns():
        raise UsageError(f"namespace {namespace!r} does not exist", "see 'vethwrap show'")
    if shutil.which(argv[0]) is None:
        from veth_wrap.cli.output import error_line

        error_line(f"{argv[0]}: command not found")
        return EXIT_NOT_FOUND
    exec_replace(["ip", "netns", "exec", namespace, *argv])
    return 0  # not reached: exec replaced the process
