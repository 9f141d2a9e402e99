"""The fixture's faults and names: short names resolve in the lab; partition, impaired and
flap undo themselves at a block's end and at teardown, also when the test fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_inner_pytest

from veth_wrap import pytest_plugin

vethwrap_lab = pytest_plugin.vethwrap_lab

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _answers(lab, source: str, target: str, wait: str = "1") -> bool:
    return lab.run(source, ["ping", "-c", "1", "-W", wait, lab.address(target, source)]
                   ).returncode == 0


def _table(lab, name: str) -> bool:
    listed = lab.run(name, ["nft", "list", "tables"]).stdout
    return "table inet vethwrap" in listed


def test_the_names_a_test_wrote_resolve_inside_its_lab(vethwrap_lab):
    lab = vethwrap_lab(["web", "cli"])
    assert lab["web"] != "web"
    lab.start("web", [sys.executable, "-m", "http.server", "80", "--bind", "0.0.0.0"],
              wait_port=80, timeout=30)
    fetched = lab.run("cli", ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                              "--max-time", "10", "http://web/"])
    assert fetched.returncode == 0 and fetched.stdout == "200", fetched.stderr
    found = lab.run("cli", ["getent", "hosts", "web"]).stdout.split()
    assert found[0] == lab.address("web", "cli") and lab["web"] in found and "web" in found


def test_a_lab_file_with_a_prefix_resolves_its_own_names(vethwrap_lab):
    lab = vethwrap_lab.from_file(ROOT / "examples" / "chain.yaml")
    found = lab.run("a", ["getent", "hosts", "b"]).stdout.split()
    assert found and found[0] in [a.split("/")[0] for end in lab.lab.ends_in(lab["b"])
                                  for a in end.addresses]
    assert found[1:] == [lab["b"], "b"]
    assert lab.run("a", ["ping", "-c", "1", "-W", "2", "b"]).returncode == 0


def test_partition_and_heal_in_a_with_block_and_by_hand(vethwrap_lab):
    lab = vethwrap_lab(["a", "b", "c"])
    with lab.partition(["a"], ["b", "c"]) as cut:
        assert not _answers(lab, "a", "b") and not _answers(lab, "c", "a")
        assert _answers(lab, "b", "c")
        assert cut.active and _table(lab, "a")
    assert not cut.active and not _table(lab, "a")
    assert _answers(lab, "a", "b") and _answers(lab, "c", "a")
    lab.partition(["b"], ["c"], oneway=True)
    assert not _answers(lab, "b", "c") and _answers(lab, "a", "c")
    lab.heal()
    assert _answers(lab, "b", "c") and not any(_table(lab, n) for n in ("a", "b", "c"))


def test_impaired_puts_back_what_the_end_held(vethwrap_lab):
    from veth_wrap import api

    lab = vethwrap_lab(["a", "b"])
    end = lab.lab.ends_in(lab["a"])[0].ifname
    api.link_set(lab["a"], end, api.LinkOpts(rate="50mbit"), False)
    before = api.describe(lab["a"], end)["impairments"]
    with lab.impaired("a", loss="100%"):
        assert api.describe(lab["a"], end)["impairments"]["loss"] == "100%"
        assert not _answers(lab, "a", "b")
    assert api.describe(lab["a"], end)["impairments"] == before
    assert _answers(lab, "a", "b")


def _carrier_changes(lab, name: str, ifname: str) -> int:
    return int(lab.run(name, ["cat", f"/sys/class/net/{ifname}/carrier_changes"]).stdout)


def test_flap_takes_the_link_down_and_up_count_times(vethwrap_lab):
    lab = vethwrap_lab(["a", "b"])
    end = lab.lab.ends_in(lab["a"])[0].ifname
    before = _carrier_changes(lab, "a", end)
    flap = lab.flap("a", down="0.3s", up="0.3s", count=3)
    service = flap.detail
    deadline = time.monotonic() + 30
    while service.alive():
        assert time.monotonic() < deadline, "the flap did not end"
        time.sleep(0.1)
    assert _carrier_changes(lab, "a", end) - before == 6  # down and up, three times
    events = [json.loads(line)["event"] for line in service.log_text().splitlines()]
    assert events == ["down", "up"] * 3 + ["stopped"]
    assert _answers(lab, "a", "b", wait="2")


INNER = """
import json, subprocess


def _table(lab, name):
    listed = lab.run(name, ["nft", "list", "tables"]).stdout
    return "table inet vethwrap" in listed


def test_fails_inside_the_block(vethwrap_lab):
    lab = vethwrap_lab(["a", "b", "c"])
    open("first.txt", "w").write("\\n".join(lab.lab.namespaces()))
    try:
        with lab.partition(["a"], ["b", "c"]), lab.impaired("b", loss="50%"):
            assert False, "this test fails on purpose inside the block"
    finally:
        held = subprocess.run(["tc", "-n", lab["b"], "filter", "show", "dev",
                               lab.lab.ends_in(lab["b"])[0].ifname, "egress"],
                              capture_output=True, text=True).stdout
        open("after_block.txt", "w").write(json.dumps([_table(lab, "a"), held]))


def test_fails_with_faults_left_in_place(vethwrap_lab):
    lab = vethwrap_lab(["a", "b"])
    open("second.txt", "w").write("\\n".join(lab.lab.namespaces()) + "\\n" + lab.lab.name)
    lab.partition(["a"], ["b"])
    lab.flap("b", down="5s", up="5s")
    lab.impaired("a", loss="10%")
    assert False, "this test fails on purpose with its faults in place"
"""


def test_faults_are_undone_when_a_test_fails(tmp_path):
    result = run_inner_pytest(tmp_path, INNER)
    assert result.returncode == 1 and "2 failed" in result.stdout, result.stdout + result.stderr
    assert "fails on purpose inside the block" in result.stdout
    table_left, filter_left = json.loads((tmp_path / "after_block.txt").read_text())
    assert not table_left and not filter_left.strip()  # undone as the block ended
    second = (tmp_path / "second.txt").read_text().split()
    made = (tmp_path / "first.txt").read_text().split() + second[:-1]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not set(made) & {line.split()[0] for line in listed.splitlines() if line}
    assert not os.path.exists(f"/run/vethwrap/logs/{second[-1]}")
    leftover = subprocess.run(["pgrep", "-f", f"fault-agent flap {second[1]} "],
                              capture_output=True, text=True).stdout
    assert not leftover  # the flap service went with its lab
