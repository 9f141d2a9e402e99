"""`--all-hosts`: every host driven over OpenSSH, in parallel, rolled back together on failure."""

from __future__ import annotations

import json
import os

import pytest
from conftest import RUN_ID
from hosts import WAN, sim_hosts_fixture

from veth_wrap.model.names import p2p_ifname

pytestmark = pytest.mark.integration
sim_hosts = sim_hosts_fixture()
PREFIX = f"vt{RUN_ID}s"


@pytest.fixture
def wired(sim_hosts, tmp_path):
    """Two hosts with sshd on their underlay addresses; the file; the ssh environment."""
    left, right = sim_hosts.add("left"), sim_hosts.add("right")
    sim_hosts.link(left, right)
    env = sim_hosts.ssh([left, right])
    path = tmp_path / "wan.yaml"
    path.write_text(WAN)
    return left, right, str(path), env


def test_all_hosts_up_then_down(wired, unchanged):
    left, right, path, env = wired
    before = {host.name: host.snapshot() for host in (left, right)}
    done = left.vethwrap("up", "-f", path, "--prefix", PREFIX, "--all-hosts", "--json", env=env)
    assert done.returncode == 0, done.stderr
    answers = {item["host"]: item for item in json.loads(done.stdout)["hosts"]}
    assert set(answers) == {"left", "right"} and all(a["ok"] for a in answers.values())
    assert answers["right"]["result"]["host"] == "right"
    for host in (left, right):
        matrix = host.vethwrap("pingall", "-f", path, "--prefix", PREFIX, "--json")
        assert matrix.returncode == 0, matrix.stdout + matrix.stderr
    gone = right.vethwrap("down", "-f", path, "--prefix", PREFIX, "--all-hosts", env=env)
    assert gone.returncode == 0, gone.stderr
    assert "host left: removed 3 namespace(s)" in gone.stderr
    for host in (left, right):
        assert host.snapshot() == before[host.name]


def test_failure_on_one_host_rolls_back_the_others(wired, unchanged):
    left, right, path, env = wired
    before = left.snapshot()
    b1 = PREFIX + "b1"
    right.ip("netns", "add", b1)  # holds an interface of the VXLAN end's name, not vethwrap's
    right.ip("-n", b1, "link", "add", p2p_ifname(PREFIX + "a1"), "type", "veth", "peer", "name",
             "other")
    done = left.vethwrap("up", "-f", path, "--prefix", PREFIX, "--all-hosts", env=env)
    assert done.returncode == 2, done.stderr
    assert "up on host right failed" in done.stderr and "took left back down" in done.stderr
    assert "is not vethwrap's" in done.stderr
    assert left.snapshot() == before
    assert right.netns() == [b1]


def test_not_installed_is_said_clearly(wired, unchanged):
    left, _right, path, env = wired
    env = dict(env, VETHWRAP_REMOTE_COMMAND="/nonexistent/vethwrap")
    done = left.vethwrap("up", "-f", path, "--prefix", PREFIX, "--all-hosts", env=env)
    assert done.returncode == 1
    assert "vethwrap is not installed on host" in done.stderr
    assert "remote_command" in done.stderr and left.netns() == []


def test_ssh_that_fails_names_the_host(wired, unchanged, tmp_path):
    left, _right, path, env = wired
    text = open(path).read().replace("b2]}", "b2], ssh: root@192.168.77.9}")
    other = tmp_path / "unreachable.yaml"
    other.write_text(text)
    env = dict(env, VETHWRAP_SSH=env["VETHWRAP_SSH"] + " -o ConnectTimeout=1")
    done = left.vethwrap("up", "-f", str(other), "--prefix", PREFIX, "--all-hosts", env=env)
    assert done.returncode == 1
    assert "ssh to host right (root@192.168.77.9) failed" in done.stderr
    assert left.netns() == [] and os.path.exists(path)


HOSTILE_REMOTE = [
    "'$(touch {canary})vethwrap'",
    "'vethwrap; touch {canary}'",
    "'`touch {canary}`'",
    "[sh, -c, 'touch {canary}']",
    "[vethwrap, '&&', touch, {canary}]",
    "'touch {canary}'",
]


@pytest.mark.parametrize("value", HOSTILE_REMOTE)
def test_remote_command_with_shell_text_is_refused(wired, unchanged, tmp_path, value):
    left, right, path, env = wired
    canary = tmp_path / "canary"
    other = tmp_path / "hostile.yaml"
    other.write_text(open(path).read() + f"remote_command: {value.format(canary=canary)}\n")
    env = {k: v for k, v in env.items() if k != "VETHWRAP_REMOTE_COMMAND"}
    for argv in (("validate", "-f", str(other)),
                 ("up", "-f", str(other), "--prefix", PREFIX, "--all-hosts", "--dry-run"),
                 ("up", "-f", str(other), "--prefix", PREFIX, "--all-hosts")):
        done = left.vethwrap(*argv, env=env)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "remote_command" in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    assert not canary.exists()
    assert left.netns() == [] and right.netns() == []


def test_remote_command_from_the_environment_is_words(wired, unchanged, tmp_path):
    left, _right, path, env = wired
    canary = tmp_path / "canary"
    env = dict(env, VETHWRAP_REMOTE_COMMAND=f"vethwrap; touch {canary}")
    done = left.vethwrap("up", "-f", path, "--prefix", PREFIX, "--all-hosts", "--dry-run",
                         env=env)
    assert done.returncode == 2 and "VETHWRAP_REMOTE_COMMAND" in done.stderr
    assert not canary.exists()


SPY = """#!{python}
import json, os, sys
with open({record!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
os.chdir({worktree!r})
os.execv(sys.executable, [sys.executable, "-m", "veth_wrap", *sys.argv[1:]])
"""


def test_dry_run_starts_only_vethwraps_dry_run_with_every_word_intact(wired, unchanged,
                                                                      tmp_path):
    import sys

    from hosts import WORKTREE

    left, right, path, env = wired
    record = tmp_path / "argv.jsonl"
    spy = tmp_path / "bin" / "vethwrap"
    spy.parent.mkdir()
    spy.write_text(SPY.format(python=sys.executable, record=str(record), worktree=str(WORKTREE)))
    spy.chmod(0o755)
    other = tmp_path / "spied.yaml"
    other.write_text(open(path).read() + f"remote_command: [env, NO_COLOR=1, {spy}]\n")
    env = {k: v for k, v in env.items() if k != "VETHWRAP_REMOTE_COMMAND"}
    before = {host.name: host.snapshot() for host in (left, right)}
    done = left.vethwrap("up", "-f", str(other), "--prefix", PREFIX, "--all-hosts", "--dry-run",
                         env=env)
    assert done.returncode == 0, done.stderr
    for host in ("left", "right"):
        shown = f"# host {host}: ssh 192.168.77.{1 if host == 'left' else 2} " \
                f"'env NO_COLOR=1 {spy} up --prefix {PREFIX} --dry-run -f - --host {host}'"
        assert shown in done.stdout, done.stdout
    calls = sorted(json.loads(line) for line in record.read_text().splitlines())
    assert calls == [["up", "--prefix", PREFIX, "--dry-run", "-f", "-", "--host", host]
                     for host in ("left", "right")]
    for host in (left, right):
        assert host.snapshot() == before[host.name]
