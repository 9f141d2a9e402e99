"""Units of the service layer: name files as plan steps, file steps, /proc parsing, dry run."""

from __future__ import annotations

import os

import pytest
from fakes import RecordingRunner

from veth_wrap.compile import namefiles
from veth_wrap.compile.destroy import Teardown
from veth_wrap.errors import CommandFailed, UsageError
from veth_wrap.kernel.procs import parse_sockets
from veth_wrap.model import shapes
from veth_wrap.model.procfacts import NameFile, Proc, check_service_name, namefile_mark
from veth_wrap.model.servicespec import (
    Limits,
    ServiceSpec,
    WaitPort,
    cgroup_name,
    check_env,
    parse_cgroup_name,
    parse_memory,
    parse_wait_port,
    service_of,
)
from veth_wrap.model.topology import Kind
from veth_wrap.run import commands, filesteps, processes
from veth_wrap.run.transaction import rollback
from veth_wrap.steps import Kind as OpKind
from veth_wrap.steps import Op, Step

# /proc/net/tcp and udp6 as recorded in a namespace: 8765 (0x223D) listening (inode 335495),
# an established connection to it from 0xD2D0 and its accepted end (inode 0) that must not
# count; UDP port 53 (0x35) bound, unconnected (state 07, inode 335496)
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:223D 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 335495 2 00000000c3a9af03 100 0 0 10 0
   1: 0100007F:D2D0 0100007F:223D 01 00000000:00000000 00:00000000 00000000     0        0 335497 2 0000000013427db9 20 0 0 10 -1
   2: 0100007F:223D 0100007F:D2D0 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000004e07cecc 20 0 0 10 -1
"""  # noqa: E501
UDP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 7259: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 335496 2 000000002830170b 0
"""  # noqa: E501


def test_sockets_by_inode_from_proc_net_tables():
    assert parse_sockets(TCP, "0A") == {335495: 8765}
    assert parse_sockets(UDP6, "07") == {335496: 53}
    assert parse_sockets(TCP.splitlines()[0], "0A") == {}


def test_wait_ports_and_limits_as_given():
    assert parse_wait_port("80") == WaitPort(80, "tcp")
    assert parse_wait_port("53/UDP") == WaitPort(53, "udp") and str(WaitPort(53, "udp")) == "53/udp"
    for bad in ("0", "65536", "80/sctp", "x", "80/"):
        with pytest.raises(UsageError):
            parse_wait_port(bad)
    assert parse_memory("64M") == 64 << 20 and parse_memory("1g") == 1 << 30
    for bad in ("12", "64X", "-1M", ""):
        with pytest.raises(UsageError):
            parse_memory(bad)
    limits = Limits(64 << 20, 0.5)
    assert limits.files() == {"memory.max": str(64 << 20), "memory.swap.max": "0",
                              "cpu.max": "50000 100000"}
    assert limits.controllers() == ["memory", "cpu"] and not Limits()


def test_vethwrap_variables_are_refused_in_env():
    assert check_env({"PORT": "80"}) == {"PORT": "80"}
    for bad in ("VETHWRAP_SERVICE", "VETHWRAP_LAB", "vethwrap_netns", "VETHWRAP_DEBUG"):
        with pytest.raises(UsageError, match="vethwrap's own"):
            check_env({bad: "x"})


def test_cgroup_names_say_lab_namespace_and_service():
    assert cgroup_name("lab", "ns0", "web.1") == "lab:ns0:web.1"
    assert parse_cgroup_name("lab:ns0:web.1") == ("lab", "ns0", "web.1")
    assert service_of("/vethwrap/lab:ns0:web.1") == ("lab", "ns0", "web.1")
    assert service_of("/vethwrap/lab:ns0:web.1/inner") == ("lab", "ns0", "web.1")
    for other in ("/user.slice/x", "/", "/vethwrap", "/vethwrap/cgroup.procs", "/vethwrap/a:b"):
        assert service_of(other) is None


def test_a_record_round_trips_and_a_bad_one_is_refused():
    spec = ServiceSpec("web", ("nginx", "-c", "x"), {"A": "1"}, WaitPort(53, "udp"),
                       ("redis-cli", "ping"), Limits(1 << 26, 0.25))
    assert ServiceSpec.from_json(spec.to_json()) == spec
    for bad in ({}, {"name": "../x", "argv": []}, {"name": "w", "argv": ["x"],
                                                   "env": {"VETHWRAP_LAB": "y"}}):
        with pytest.raises(UsageError):
            ServiceSpec.from_json(bad)


def test_pair_and_bridge_files_say_the_same_and_name_everyone():
    pair = shapes.build(["a", "b"])
    found = namefiles.contents(pair)
    assert found["a"] is found["b"]  # one string: one tee writes both
    lines = found["a"].splitlines()
    assert namefile_mark(lines[0]).lab == "a" and lines[1].startswith("127.0.0.1")
    assert lines[-2:] == ["10.0.0.1\ta", "10.0.0.2\tb"]
    bridge = shapes.build(["a", "b", "c"])
    files_ = namefiles.contents(bridge)
    assert set(files_) == {"a", "b", "c", "vethwrap-a"}  # the hub resolves the members too
    assert "10.0.0.3\tc" in files_["vethwrap-a"] and "vethwrap-a" not in files_["a"]


def test_chain_members_see_their_neighbour_on_the_shared_link():
    chain = shapes.build(["a", "r", "b"], kind=Kind.CHAIN)
    found = namefiles.contents(chain)
    assert "10.0.0.2\tr" in found["a"] and "10.0.0.5\tr" in found["b"]
    assert "10.0.0.1\ta" in found["b"]  # not a neighbour: its first address


def test_ipv6_addresses_are_listed_after_ipv4():
    lab = shapes.build(["a", "b"], ipv6=True)
    text = namefiles.contents(lab)["a"]
    names = [line.split("\t")[1] for line in text.splitlines()[3:]]
    assert names == ["a", "b", "a", "b"] and ":" in text.splitlines()[-1]


def test_write_plan_mkdir_then_one_tee_and_nothing_when_up_to_date():
    lab = shapes.build(["a", "b"])
    plan = namefiles.write_plan(lab, {})
    assert [commands.argv(step)[:3] for step in plan.steps] == [("mkdir", "-p", "--"),
                                                        ("tee", "--", "/etc/netns/a/hosts")]
    script = "\n".join(commands.script(plan))
    assert "tee -- /etc/netns/a/hosts /etc/netns/b/hosts <<'EOF'" in script
    current = {ns: NameFile(ns, text, True, True, namefile_mark(text.split("\n")[0]))
               for ns, text in namefiles.contents(lab).items()}
    assert namefiles.write_plan(lab, current).empty


def test_a_foreign_file_is_left_alone_with_a_note():
    lab = shapes.build(["a", "b"])
    found = {"a": NameFile("a", "10.1.1.1 x\n", True, True, None)}
    plan = namefiles.write_plan(lab, found)
    assert commands.argv(plan.steps[-1]) == ("tee", "--", "/etc/netns/b/hosts")
    assert any(namefiles.FOREIGN in note and "/etc/netns/a/hosts" in note for note in plan.notes)
    assert namefiles.removal_steps(found.values()) == []  # never removed either


def test_removal_keeps_folders_that_hold_other_files():
    ours = namefile_mark("# vethwrap/l/hosts/pair: x")
    found = [NameFile("a", "", True, True, ours), NameFile("b", "", True, True, ours, ("x",))]
    steps = namefiles.removal_steps(found, ["/run/vethwrap/logs/l"])
    assert commands.argv(steps[0]) == ("rm", "-rf", "--", "/etc/netns/a/hosts",
                                       "/etc/netns/b/hosts", "/run/vethwrap/logs/l")
    assert commands.argv(steps[1]) == ("rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a")


def test_file_steps_run_in_process_and_never_follow_links(tmp_path):
    folder = tmp_path / "etc" / "ns0"
    filesteps.run_builtin(OpKind.MAKE_DIRS, ("mkdir", "-p", "--", str(folder)), None)
    target = folder / "hosts"
    assert filesteps.run_builtin(OpKind.WRITE_NAME_FILE, ("tee", "--", str(target)), "x\n") == "x\n"
    assert target.read_text() == "x\n" and oct(target.stat().st_mode & 0o777) == "0o644"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = folder / "linked"
    link.symlink_to(victim)
    with pytest.raises(CommandFailed, match="linked"):
        filesteps.run_builtin(OpKind.WRITE_NAME_FILE, ("tee", "--", str(link)), "overwrite\n")
    assert victim.read_text() == "keep"
    filesteps.run_builtin(OpKind.REMOVE_FILES, ("rm", "-rf", "--", str(target), str(link),
                                          str(tmp_path / "none")), None)
    assert victim.exists() and not target.exists()
    filesteps.run_builtin(OpKind.REMOVE_DIRS, ("rmdir", "--ignore-fail-on-non-empty", "--",
                                         str(folder)), None)
    assert not folder.exists()
    with pytest.raises(KeyError):  # only the kinds of file step the plan writes
        filesteps.run_builtin(OpKind.DEL_LINK, ("rm", "-f", "--", "x"), None)


def test_a_file_step_is_done_by_its_kind_and_a_command_is_never_one(tmp_path, monkeypatch):
    """The runner does a file step itself because of its kind; an argv that looks like one
    is an ordinary command."""
    from veth_wrap.run.runner import ShRunner

    target = tmp_path / "hosts"
    step = hosts_step(str(target))
    result = processes.start(step, ShRunner())
    assert result.stdout == "x\n" and target.read_text() == "x\n"
    monkeypatch.setattr(filesteps, "run_builtin", lambda *a: pytest.fail("not a file step"))
    out = ShRunner().run(("tee", "--", str(tmp_path / "other")), stdin="y\n")
    assert out.stdout == "y\n" and (tmp_path / "other").read_text() == "y\n"


def hosts_step(path: str) -> Step:
    return Step((Op(OpKind.WRITE_NAME_FILE, ("--", path)),), program="tee", input="x\n")


def test_rollback_undoes_a_file_step_with_its_own_program():
    runner = RecordingRunner()
    done = [Op(OpKind.MAKE_DIRS, ("-p", "--", "/etc/netns/a"),
               ("--ignore-fail-on-non-empty", "--", "/etc/netns/a"), undo_program="rmdir",
               undo_kind=OpKind.REMOVE_DIRS),
            Op(OpKind.ADD_NETNS, ("netns", "add", "a"), ("netns", "del", "a")),
            Op(OpKind.WRITE_NAME_FILE, ("--", "/etc/netns/a/hosts"),
               ("-rf", "--", "/etc/netns/a/hosts"), undo_program="rm",
               undo_kind=OpKind.REMOVE_FILES)]
    assert rollback(done, runner) == []
    assert [call[0] for call in runner.calls] == [
        ("rm", "-rf", "--", "/etc/netns/a/hosts"), ("ip", "-force", "-batch", "-"),
        ("rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a")]


def test_dry_run_of_destroy_lists_the_processes_first():
    proc = Proc(42, 1, ("sleep", "60"), "nap", "l", netns="a")
    plain = Proc(43, 1, ("cat",), netns="a")
    teardown = Teardown(pending=[proc, plain])
    lines = commands.script(teardown, "vethwrap destroy")
    assert lines[0] == "# vethwrap destroy" and "stop 2 process(es)" in lines[1]
    assert lines[2:] == ["#   a pid 42 (nap): sleep 60", "#   a pid 43: cat"]


def test_dry_run_of_destroy_names_the_service_cgroups():
    teardown = Teardown(pending=[Proc(42, 1, ("nginx",), "web", "l", netns="a", cgroup="l:a:web")],
                        cgroups=["l:a:web", "l:b:gone"])
    lines = commands.script(teardown, "vethwrap destroy")
    assert lines[-1] == "#   service cgroup(s): l:a:web, l:b:gone"
    assert commands.script(Teardown(cgroups=["l:b:gone"]))[:2] == [
        "# first, empty and remove service cgroups", "#   service cgroup(s): l:b:gone"]


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


def test_files_under_run_vethwrap_are_reached_without_following_links(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: the files live under /run/vethwrap")
    from conftest import RUN_ID

    from veth_wrap.errors import LinkRefused
    from veth_wrap.run import rundir

    lab = f"vtunit{RUN_ID}"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept").write_text("not vethwrap's")
    base = f"{rundir.LOCK_DIR}/logs"
    try:
        os.close(rundir.write_file(["logs", lab, "ns"], "svc.log"))
        os.symlink(outside, f"{base}/{lab}/linked")
        os.symlink(outside / "kept", f"{base}/{lab}/ns/other.log")
        with pytest.raises(LinkRefused, match=f"{base}/{lab}/linked is a symbolic link"):
            rundir.write_file(["logs", lab, "linked"], "svc.log")
        with pytest.raises(LinkRefused, match="linked is a symbolic link"):
            rundir.read_file(["logs", lab, "linked"], "kept")
        with pytest.raises(LinkRefused, match="other.log is a symbolic link"):
            rundir.read_file(["logs", lab, "ns"], "other.log")
        with pytest.raises(LinkRefused):
            rundir.remove(["logs", lab, "linked", "kept"])
        rundir.remove(["logs", lab, "ns", "other.log"])  # the link goes, not what it names
        filesteps.run_builtin(OpKind.REMOVE_FILES, ["rm", "-rf", "--", f"{base}/{lab}"], None)
        assert not os.path.lexists(f"{base}/{lab}")
        assert (outside / "kept").read_text() == "not vethwrap's"
    finally:
        filesteps.run_builtin(OpKind.REMOVE_FILES, ["rm", "-rf", "--", f"{base}/{lab}"], None)
