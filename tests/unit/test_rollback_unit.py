"""The walker's rollback on recorded runs: newest first, partial batches, failures reported."""

from __future__ import annotations

import pytest
from fakes import RecordingRunner

from veth_wrap.compile.create import create_plan
from veth_wrap.errors import CommandFailed
from veth_wrap.model import shapes
from veth_wrap.run.runner import Result
from veth_wrap.run.transaction import apply


def _runner(fail_call: int, stderr: str, fail_undo: bool = False) -> RecordingRunner:
    count = {"n": 0}

    def answer(argv, stdin):
        count["n"] += 1
        if count["n"] == fail_call or (fail_undo and "-force" in argv):
            return Result(argv, "", stderr, 2)
        return None

    return RecordingRunner(answer)


def test_a_batch_failing_at_line_3_undoes_what_ran_newest_first():
    plan = create_plan(shapes.build(["ns0", "ns1"]), {})
    # the plan runs as one root batch; its line 5 is ns1's step (after ns0's, which made
    # the link), whose own line 2 failed
    runner = _runner(1, "RTNETLINK answers: File exists\nCommand failed /dev/fd/3:2\n"
                        "Command failed -:5")
    with pytest.raises(CommandFailed) as caught:
        apply(plan, runner)
    assert caught.value.line().startswith(
        "command failed: ip addr add 10.0.0.2/24 dev vw-ns0: RTNETLINK")
    root = runner.calls[0]
    assert root[0] == ("ip", "-batch", "-")
    assert root[1].splitlines()[4].startswith("netns exec ns1 ip -batch /dev/fd/")
    undo = [(argv, stdin) for argv, stdin in runner.calls[1:]]
    assert undo == [(("ip", "-force", "-batch", "-"), "netns del ns0\nnetns del ns1\n")]


def test_a_root_line_failing_undoes_only_the_lines_before_it():
    plan = create_plan(shapes.build(["ns0", "ns1"]), {})
    runner = _runner(1, "RTNETLINK answers: File exists\nCommand failed -:3")  # netns add ns0
    with pytest.raises(CommandFailed) as caught:
        apply(plan, runner)
    assert caught.value.line().startswith("command failed: ip netns add ns0: ")
    assert runner.calls[1:] == [(("ip", "-force", "-batch", "-"), "netns del ns1\n")]


def test_a_failed_undo_is_reported_in_the_one_line():
    plan = create_plan(shapes.build(["ns0", "ns1"]), {})
    runner = _runner(1, "RTNETLINK answers: File exists\nCommand failed -:5", fail_undo=True)
    with pytest.raises(CommandFailed) as caught:
        apply(plan, runner)
    line = caught.value.line()
    assert "rollback failed for 1 command(s)" in line and "vethwrap destroy" in line
    assert "\n" not in line


def test_a_root_batch_names_each_forked_program_by_its_path(tmp_path, monkeypatch):
    """`netns exec NS PROG` lines get PROG's path, found along PATH as a shell would: the
    first directory that has it wins; a path stays, and a program not found keeps its name."""
    from veth_wrap.run.runner import exec_paths

    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "ip").write_text("#!/bin/sh\n")
        (folder / "ip").chmod(0o755)
    monkeypatch.setenv("PATH", f"{first}:{second}")
    batch = ("netns add a\nnetns exec a ip -batch /dev/fd/3\nnetns exec a /bin/true\n"
             "netns exec b no-such-program -x\nlink set lo up\n")
    assert exec_paths(batch) == (f"netns add a\nnetns exec a {first}/ip -batch /dev/fd/3\n"
                                 "netns exec a /bin/true\nnetns exec b no-such-program -x\n"
                                 "link set lo up\n")


def _lab_plan(count: int):
    from veth_wrap import api

    lab = shapes.build([f"ns{i}" for i in range(count)])
    return api.with_hosts(create_plan(lab, {}), lab, {})


def test_name_files_go_as_a_lane_beside_the_ports_after_the_members_wave():
    from veth_wrap.run import schedule

    plan = _lab_plan(40)
    waves = schedule.waves(plan)
    wide = [i for i, wave in enumerate(waves) if len(wave) > 1]
    assert len(wide) == 2 and wide[1] == wide[0] + 1, [len(wave) for wave in waves]
    members, (ports, files) = waves[wide[0]], waves[wide[1]]
    assert len(members) == schedule.AT_ONCE
    assert [step.comment.split()[0] for run in ports for step in run] == ["ports"]
    # one lane: the folders before the files in them
    assert [step.program for run in files for step in run] == ["mkdir", "tee"]
    assert not any(step.program in ("mkdir", "tee") for i, wave in enumerate(waves)
                   if i != wide[1] for lane in wave for run in lane for step in run)


def test_without_a_wave_the_name_files_run_last_in_order():
    from veth_wrap.run import schedule

    plan = _lab_plan(3)
    programs = [step.program for wave in schedule.waves(plan) for lane in wave
                for run in lane for step in run]
    assert programs[-2:] == ["mkdir", "tee"] and set(programs[:-2]) == {"ip"}


def test_a_failing_lane_rolls_back_the_name_files_beside_it():
    import threading

    plan = _lab_plan(40)
    written = threading.Event()

    def answer(argv, stdin):  # the ports fail once the files beside them are written
        if argv[0] == "tee":
            written.set()
        if stdin and " master " in stdin and "-force" not in argv:
            assert written.wait(10)
            return Result(argv, "", "RTNETLINK answers: File exists\nCommand failed -:1", 2)
        return None

    runner = RecordingRunner(answer)
    with pytest.raises(CommandFailed):
        apply(plan, runner)
    undone = [argv for argv, _ in runner.calls if argv[0] in ("rm", "rmdir")]
    assert [argv[0] for argv in undone] == ["rm", "rmdir"]  # the files, then their folders
