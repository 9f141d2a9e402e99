"""Several creates at once, the same lab twice at once, and the lock's safety checks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from conftest import ip
from faultip import wiring

from veth_wrap.errors import PreflightError
from veth_wrap.run import lock


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "veth_wrap", *args], text=True,
                            env=dict(os.environ, NO_COLOR="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    return [(proc.wait(timeout=300), proc.communicate()[1]) for proc in procs]


@pytest.mark.integration
def test_different_labs_at_once_all_build(netns, cli):
    labs = [[netns.name() for _ in range(3)] for _ in range(3)]
    results = _finish([_start("create", *members, "--no-verify") for members in labs])
    assert [code for code, _ in results] == [0, 0, 0], results
    for members in labs:
        assert all(ns in ip("netns", "list").stdout for ns in members)
        assert cli("destroy", "--lab", members[0]).returncode == 0


@pytest.mark.integration
def test_same_lab_twice_at_once_builds_once(netns, cli):
    members = [netns.name() for _ in range(4)]
    results = _finish([_start("create", *members, "--no-verify") for _ in range(2)])
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    assert any("already built as asked" in err for _, err in results) or codes == [0, 2]
    assert all("Traceback" not in err for _, err in results)
    again = cli("create", *members, "--no-verify")  # whole: a third create finds nothing to do
    assert again.returncode == 0 and "nothing changed" in again.stderr
    assert all(len(wiring(ns)[0]) == 2 for ns in members)  # lo and the member's end
    assert cli("destroy", "--lab", members[0]).returncode == 0


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
