"""kernel/reader on real namespaces: the real runner, a recording of it and its replay by the
fake runner all take the same path through kernel/, and give the same answers.

Every namespace comes from the `netns` fixture and is deleted by exact name; the root
namespace is only read.
"""

from __future__ import annotations

import os

import pytest
from conftest import ip
from fakes import Tape

from veth_wrap.kernel import reader, state
from veth_wrap.kernel.readings import gather
from veth_wrap.run.runner import NETNS_RUN, ShRunner

pytestmark = pytest.mark.integration
KEYS = ["net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv6.conf.all.forwarding"]


def pair(netns) -> tuple[str, str]:
    """Two namespaces joined by a veth, 10.77.0.1/24 and 10.77.0.2/24, up."""
    a, b = netns.make("a"), netns.make("b")
    ip("link", "add", "xr-a", "netns", a, "type", "veth", "peer", "name", "xr-b", "netns", b)
    for ns, dev, addr in ((a, "xr-a", "10.77.0.1/24"), (b, "xr-b", "10.77.0.2/24")):
        ip("-n", ns, "addr", "add", addr, "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")
        ip("-n", ns, "link", "set", "lo", "up")
    return a, b


def everything(runner, a: str, b: str) -> dict:
    """What each kind of reading says of the pair (nothing that changes by itself)."""
    links = reader.links([a, b], runner)
    near = gather([a, b], (reader.LINKS, reader.NSIDS, reader.RULES), runner)
    return {
        "listed": {a, b} <= set(state.list_netns(runner)),
        "addresses": {ns: {n: ln.addresses for n, ln in found.items()}
                      for ns, found in links.items()},
        "nsids": {ns: sorted(name for name in ids.values() if name)
                  for ns, (_, ids, _) in near.items()},
        "rules": {ns: len(rules) for ns, (_, _, rules) in near.items()},
        "policies": {ns: len(rules) for ns, (rules, _) in
                     reader.policies([a, b], 4, runner).items()},
        "route": reader.route_get(a, "10.77.0.2", runner).route.get("dev"),
        "refused": reader.route_get(a, "10.99.0.1", runner).error,
        "routes": [r and r.get("dev") for r in reader.routes([(a, "10.77.0.2"),
                                                               (b, "10.77.0.1")], runner)],
        "sysctls": reader.sysctls({a: KEYS, b: KEYS}, runner),
        "vlans": reader.one(a, reader.VLANS, runner) is not None,
    }


def test_the_real_runner_and_its_replay_take_one_path(netns):
    a, b = pair(netns)
    direct = everything(ShRunner(), a, b)
    tape = Tape(ShRunner())
    recorded = everything(tape, a, b)
    replayer = tape.replayer()
    assert everything(replayer, a, b) == recorded == direct
    assert direct["addresses"][a]["xr-a"] == ("10.77.0.1/24",) and direct["route"] == "xr-a"
    assert direct["nsids"] == {a: [b], b: [a]} and direct["refused"] == "Network is unreachable"
    assert direct["sysctls"][a]["net.ipv4.ip_forward"] == "0"
    # the replay asked exactly what the real runner was asked; each of the six batched
    # readings read both namespaces in one process
    assert replayer.calls == [(argv, stdin) for argv, stdin, _ in tape.calls]
    batches = [stdin for argv, stdin, _ in tape.calls if argv == ("ip", "-batch", "-")]
    assert len(batches) == 6 and all(a in text and b in text for text in batches[:5])


def test_a_namespace_half_made_is_left_out_by_every_runner(netns):
    a, _ = pair(netns)
    half = netns.name("h")
    path = os.path.join(NETNS_RUN, half)
    with open(path, "x"):  # what `ip netns add` leaves for a moment before it binds it
        pass
    try:
        real = ShRunner()
        assert half in real.netns() and half not in real.netns(bound=True)
        assert a in real.netns(bound=True)
        found = state.read([a, half], real, routes=False)
        assert list(found) == [a] and "xr-a" in found[a].links
    finally:
        os.unlink(path)
