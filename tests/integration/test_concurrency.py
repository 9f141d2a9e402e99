"""Several creates at once, the same lab twice at once, and the lock's safety checks. What runs
at once runs in processes of its own; the calls before and after run in-process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ip
from faultip import wiring
from inprocess import vethwrap

from veth_wrap.errors import PreflightError
from veth_wrap.run import lock

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "veth_wrap", *args], text=True,
                            env=dict(os.environ, NO_COLOR="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    return [(proc.wait(timeout=300), proc.communicate()[1]) for proc in procs]


@pytest.mark.integration
def test_different_labs_at_once_all_build(netns):
    labs = [[netns.name() for _ in range(3)] for _ in range(3)]
    results = _finish([_start("create", *members, "--no-verify") for members in labs])
    assert [code for code, _ in results] == [0, 0, 0], results
    for members in labs:
        assert all(ns in ip("netns", "list").stdout for ns in members)
        assert vethwrap("destroy", "--lab", members[0]).returncode == 0


@pytest.mark.integration
def test_same_lab_twice_at_once_builds_once(netns):
    """With the lock the second create waits, then finds the lab built: both end 0."""
    members = [netns.name() for _ in range(4)]
    results = _finish([_start("create", *members) for _ in range(2)])
    assert [code for code, _ in results] == [0, 0], results
    assert sum("already built as asked" in err for _, err in results) == 1, results
    assert all("Traceback" not in err for _, err in results)
    again = vethwrap("create", *members, "--no-verify")  # whole: a third create finds nothing to do
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert all(len(wiring(ns)[0]) == 2 for ns in members)  # lo and the member's end
    assert vethwrap("destroy", "--lab", members[0]).returncode == 0


@pytest.mark.integration
def test_same_file_up_twice_at_once_builds_once(netns, tmp_path):
    prefix = netns.name()
    netns.names.extend(f"{prefix}{ns}" for ns in ("a", "r", "b"))
    path = tmp_path / "chain.yaml"
    path.write_text((ROOT / "examples" / "chain.yaml").read_text())
    results = _finish([_start("up", "-f", str(path), "--prefix", prefix) for _ in range(2)])
    assert [code for code, _ in results] == [0, 0], results
    assert sum("nothing changed" in err for _, err in results) == 1, results
    assert vethwrap("down", "-f", str(path), "--prefix", prefix).returncode == 0


@pytest.mark.integration
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8])
def test_create_racing_destroy_leaves_the_lab_whole_or_gone(delay, netns):
    members = [netns.name() for _ in range(3)]
    create = _start("create", *members, "-t", "chain")
    time.sleep(delay)  # destroy lands before, during or after the create's hold of the lock
    destroy = _start("destroy", "--lab", members[0])
    results = _finish([create, destroy])
    assert [code for code, _ in results] == [0, 0], results
    present = [ns in ip("netns", "list").stdout.split() for ns in members]
    assert present in ([True] * 3, [False] * 3), present
    if all(present):  # whole: a chain's ends have one link, its middle two, each up and wired
        assert [len(wiring(ns)[0]) for ns in members] == [2, 3, 2]
        assert vethwrap("create", *members, "-t", "chain").returncode == 0
    assert vethwrap("destroy", "--lab", members[0]).returncode == 0


@pytest.mark.integration
def test_a_destroy_waits_until_a_create_has_verified(netns, cli, tmp_path):
    """The create's last call (its read-back rides there) is held 2 s; a destroy started then
    must wait until the create has verified."""
    from faultip import FaultyIp

    members = [netns.name() for _ in range(2)]
    fake = FaultyIp(tmp_path / "ip")
    fake.reset()
    assert cli("create", *members, "--no-verify", env=fake.env()).returncode == 0
    applying = fake.count
    assert vethwrap("destroy", *members).returncode == 0
    fake.reset(at=applying, mode="sleep", seconds=2)
    create = subprocess.Popen([sys.executable, "-m", "veth_wrap", "create", *members],
                              text=True, env=fake.env(NO_COLOR="1"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (fake.dir / "reached").exists():
        assert create.poll() is None and time.monotonic() < deadline, create.communicate()
        time.sleep(0.02)
    destroy = _start("destroy", *members)
    results = _finish([create, destroy])
    assert [code for code, _ in results] == [0, 0], results
    assert (fake.dir / "finished").exists()
    assert not any(ns in ip("netns", "list").stdout.split() for ns in members)


@pytest.mark.integration
def test_the_real_lock_directory_is_private():
    with lock.locked():
        info = os.lstat(lock.LOCK_DIR)
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == 0
        assert stat.S_IMODE(info.st_mode) & 0o077 == 0
        mode = os.lstat(os.path.join(lock.LOCK_DIR, "lock")).st_mode
        assert stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077 == 0


def test_lock_refuses_a_symlink_and_a_shared_directory(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "run-link"
    link.symlink_to(target)
    with pytest.raises(PreflightError, match="is a symbolic link"):
        with lock.locked(str(link)):
            pass
    assert not (target / "lock").exists()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PreflightError, match="writable by others"):
        with lock.locked(str(shared)):
            pass
    fresh = tmp_path / "fresh"
    with lock.locked(str(fresh)):
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    (tmp_path / "planted").mkdir(mode=0o700)
    (tmp_path / "planted" / "lock").symlink_to(tmp_path / "victim")
    with pytest.raises(PreflightError):
        with lock.locked(str(tmp_path / "planted")):
            pass
    assert not (tmp_path / "victim").exists()


def test_lock_excludes_a_second_holder(tmp_path):
    import fcntl

    path = tmp_path / "run"
    with lock.locked(str(path)):
        with open(path / "lock") as other:  # a second open file description, as another run has
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(path / "lock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once the block ends
