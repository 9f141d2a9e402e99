"""Units of the service layer: hosts files as plan steps, file steps, /proc parsing, dry run."""

from __future__ import annotations

import os

import pytest
from fakes import RecordingRunner

from veth_wrap.compile import hosts
from veth_wrap.errors import CommandFailed, UsageError
from veth_wrap.kernel.procs import parse_listening
from veth_wrap.lifecycle import Teardown
from veth_wrap.model import shapes
from veth_wrap.model.procfacts import HostsFile, Proc, check_service_name, hosts_mark
from veth_wrap.model.topology import Kind
from veth_wrap.run import files
from veth_wrap.run.walker import rollback
from veth_wrap.steps import Op

# /proc/net/tcp6 and tcp as recorded: 8765 (0x223D) listening, 22 (0x16) listening, one
# established connection on 0x1F90 that must not count
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 00000000:223D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100000A:1F90 0200000A:C350 01 00000000:00000000 00:00000000 00000000     0
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0
"""


def test_listening_ports_from_proc_net_tcp():
    assert parse_listening(TCP) == {8765}
    assert parse_listening(TCP6) == {22}
    assert parse_listening(TCP.splitlines()[0]) == set()


def test_pair_and_bridge_files_say_the_same_and_name_everyone():
    pair = shapes.build(["a", "b"])
    found = hosts.contents(pair)
    assert found["a"] is found["b"]  # one string: one tee writes both
    lines = found["a"].splitlines()
    assert hosts_mark(lines[0]).lab == "a" and lines[1].startswith("127.0.0.1")
    assert lines[-2:] == ["10.0.0.1\ta", "10.0.0.2\tb"]
    bridge = shapes.build(["a", "b", "c"])
    files_ = hosts.contents(bridge)
    assert set(files_) == {"a", "b", "c", "vethwrap-a"}  # the hub resolves the members too
    assert "10.0.0.3\tc" in files_["vethwrap-a"] and "vethwrap-a" not in files_["a"]


def test_chain_members_see_their_neighbour_on_the_shared_link():
    chain = shapes.build(["a", "r", "b"], kind=Kind.CHAIN)
    found = hosts.contents(chain)
    assert "10.0.0.2\tr" in found["a"] and "10.0.0.5\tr" in found["b"]
    assert "10.0.0.1\ta" in found["b"]  # not a neighbour: its first address


def test_ipv6_addresses_are_listed_after_ipv4():
    lab = shapes.build(["a", "b"], ipv6=True)
    text = hosts.contents(lab)["a"]
    names = [line.split("\t")[1] for line in text.splitlines()[3:]]
    assert names == ["a", "b", "a", "b"] and ":" in text.splitlines()[-1]


def test_write_plan_mkdir_then_one_tee_and_nothing_when_up_to_date():
    lab = shapes.build(["a", "b"])
    plan = hosts.write_plan(lab, {})
    assert [step.argv()[:3] for step in plan.steps] == [("mkdir", "-p", "--"),
                                                        ("tee", "--", "/etc/netns/a/hosts")]
    script = "\n".join(plan.script())
    assert "tee -- /etc/netns/a/hosts /etc/netns/b/hosts <<'EOF'" in script
    current = {ns: HostsFile(ns, text, True, True, hosts_mark(text.split("\n")[0]))
               for ns, text in hosts.contents(lab).items()}
    assert hosts.write_plan(lab, current).empty


def test_a_foreign_file_is_left_alone_with_a_note():
    lab = shapes.build(["a", "b"])
    found = {"a": HostsFile("a", "10.1.1.1 x\n", True, True, None)}
    plan = hosts.write_plan(lab, found)
    assert plan.steps[-1].argv() == ("tee", "--", "/etc/netns/b/hosts")
    assert any(hosts.FOREIGN in note and "/etc/netns/a/hosts" in note for note in plan.notes)
    assert hosts.removal_steps(found.values()) == []  # never removed either


def test_removal_keeps_folders_that_hold_other_files():
    ours = hosts_mark("# vethwrap/l/hosts/pair: x")
    found = [HostsFile("a", "", True, True, ours), HostsFile("b", "", True, True, ours, ("x",))]
    steps = hosts.removal_steps(found, ["/run/vethwrap/logs/l"])
    assert steps[0].argv() == ("rm", "-rf", "--", "/etc/netns/a/hosts", "/etc/netns/b/hosts",
                               "/run/vethwrap/logs/l")
    assert steps[1].argv() == ("rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a")


def test_file_steps_run_in_process_and_never_follow_links(tmp_path):
    folder = tmp_path / "etc" / "ns0"
    files.run_builtin(("mkdir", "-p", "--", str(folder)), None)
    target = folder / "hosts"
    assert files.run_builtin(("tee", "--", str(target)), "x\n") == "x\n"
    assert target.read_text() == "x\n" and oct(target.stat().st_mode & 0o777) == "0o644"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = folder / "linked"
    link.symlink_to(victim)
    with pytest.raises(CommandFailed, match="linked"):
        files.run_builtin(("tee", "--", str(link)), "overwrite\n")
    assert victim.read_text() == "keep"
    files.run_builtin(("rm", "-rf", "--", str(target), str(link), str(tmp_path / "none")), None)
    assert victim.exists() and not target.exists()
    files.run_builtin(("rmdir", "--ignore-fail-on-non-empty", "--", str(folder)), None)
    assert not folder.exists()
    assert files.builtin(("rm", "-f", "x")) is None  # only the exact shapes the plan writes


def test_rollback_undoes_a_file_step_with_its_own_program():
    runner = RecordingRunner()
    done = [Op(("-p", "--", "/etc/netns/a"), ("--ignore-fail-on-non-empty", "--", "/etc/netns/a"),
               undo_program="rmdir"),
            Op(("netns", "add", "a"), ("netns", "del", "a")),
            Op(("--", "/etc/netns/a/hosts"), ("-rf", "--", "/etc/netns/a/hosts"),
               undo_program="rm")]
    assert rollback(done, runner) == []
    assert [call[0] for call in runner.calls] == [
        ("rm", "-rf", "--", "/etc/netns/a/hosts"), ("ip", "-force", "-batch", "-"),
        ("rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a")]


def test_dry_run_of_destroy_lists_the_processes_first():
    proc = Proc(42, 1, ("sleep", "60"), "nap", "l", netns="a")
    plain = Proc(43, 1, ("cat",), netns="a")
    teardown = Teardown(pending=[proc, plain])
    lines = teardown.script("vethwrap destroy")
    assert lines[0] == "# vethwrap destroy" and "stop 2 process(es)" in lines[1]
    assert lines[2:] == ["#   a pid 42 (nap): sleep 60", "#   a pid 43: cat"]


def test_service_names_name_files_safely():
    assert check_service_name("web-1.v2") == "web-1.v2"
    for bad in ("", "../x", "a/b", "-x", ".hidden", "x" * 65):
        with pytest.raises(UsageError):
            check_service_name(bad)


def test_destroy_json_shape_has_stopped():
    from veth_wrap.model.procfacts import Stopped

    teardown = Teardown(stopped=[Stopped(Proc(7, 1, ("x",), "svc", "l", netns="n"), "SIGKILL")])
    assert teardown.to_json()["stopped"] == [
        {"namespace": "n", "pid": 7, "name": "svc", "command": ["x"], "signal": "SIGKILL"}]


def test_log_files_are_private(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root: logs live under /run/vethwrap")
    from veth_wrap.run import services

    fd, path = services.open_log("vtunitlab", "vtunitns", "svc")
    try:
        assert oct(os.fstat(fd).st_mode & 0o777) == "0o600"
        assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    finally:
        os.close(fd)
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
        os.rmdir(os.path.dirname(os.path.dirname(path)))
