"""`link set` is a plan through the one walker: dry run, lock, and rollback of a live change."""

from __future__ import annotations

import json

import pytest
from conftest import ip
from faultip import FaultyIp
from inprocess import vethwrap

from veth_wrap import api
from veth_wrap.errors import VethwrapError
from veth_wrap.model import shapes
from veth_wrap.model.linkopts import link_opts

pytestmark = pytest.mark.integration


def _end(ns: str, ifname: str) -> dict:
    """MTU, MAC and qdisc of one end, read with the real ip and tc."""
    link = json.loads(ip("-j", "-n", ns, "link", "show", ifname).stdout)[0]
    return {"mtu": link["mtu"], "mac": link["address"], "qdisc": link.get("qdisc")}


def _pair(netns):
    a, b = netns.name(), netns.name()
    lab = shapes.build([a, b], lab=a)
    api.create(lab, check=False)
    return a, b, lab.links[0].a.ifname, lab.links[0].b.ifname


def test_link_set_dry_run_prints_the_plan_and_changes_nothing(netns, unchanged):
    a, b, end, peer = _pair(netns)
    before = (_end(a, end), _end(b, peer))
    done = vethwrap("link", "set", a, end, "--mtu", "9000", "--rate", "5mbit", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"ip -n {b} link set dev {peer} mtu 9000" in done.stdout
    assert f"ip -n {a} link set dev {end} mtu 9000" in done.stdout
    assert f"tc -n {a} qdisc replace dev {end} root tbf rate 5mbit" in done.stdout
    assert (_end(a, end), _end(b, peer)) == before
    applied = vethwrap("link", "set", a, end, "--mtu", "9000", "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["mtu"] == 9000 and _end(b, peer)["mtu"] == 9000
    assert vethwrap("destroy", a, b).returncode == 0


def test_a_failure_in_a_live_change_rolls_it_back(netns, tmp_path, monkeypatch, unchanged):
    a, b, end, peer = _pair(netns)
    opts = link_opts(mtu=9000, mac="02:00:00:00:00:42")
    fake = FaultyIp(tmp_path / "ip")
    runner = fake.runner(monkeypatch)
    before = (_end(a, end), _end(b, peer))
    fake.reset()
    api.link_set(a, end, opts, False, runner)
    calls = fake.count
    assert _end(a, end)["mtu"] == 9000 and _end(b, peer)["mtu"] == 9000
    api.link_set(a, end, link_opts(mtu=before[0]["mtu"], mac=before[0]["mac"]), False, runner)
    assert (_end(a, end), _end(b, peer)) == before
    undone = 0
    for k in range(1, calls + 1):  # the reads, each change, and the read-back after them
        fake.reset(at=k, mode="fail")
        try:
            api.link_set(a, end, opts, False, runner)
        except VethwrapError as error:
            assert error.exit_code == 1 and "\n" not in error.line()
            assert not getattr(error, "undo_failures", [])
            assert (_end(a, end), _end(b, peer)) == before, (k, fake.calls())
            undone += 1
            continue
        # a batch read that failed once is read again (namespaces come and go): it held
        assert "-batch" in fake.calls()[k - 1] and _end(b, peer)["mtu"] == 9000
        fake.reset()
        api.link_set(a, end, link_opts(mtu=before[0]["mtu"], mac=before[0]["mac"]), False,
                     runner)
    assert undone >= calls - 3
    fake.reset()
    api.destroy([a, b], runner=runner)
