"""Plan cases as data (tests/data/plans/*.json): a lab in, the kernel's facts, the plan out.

A case gives the lab as `vethwrap create` arguments or a lab file's text (read by the CLI
itself, so the input is exactly what a user types), the facts as "empty" or a recording of
tests/data/ip, and options. The plan is kept in the form that says what changes and not how
it is grouped into processes: each op's kind, target, words and undo, listed per namespace in
order (how the ops are grouped into steps and processes is left out: it is the schedule's
business, and may change without changing what the plan does).

After a deliberate change, rewrite the expected plans and read the diff:
    REGEN_PLAN_CASES=1 python3 -m pytest -q tests/unit/test_plan_cases.py; git diff tests/data/plans
A new case is a file without "expected": the same command writes it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from unittest import mock

from veth_wrap import steps as plan_steps

ROOT = Path(__file__).parent / "data"
CASES = ROOT / "plans"
REGEN = "REGEN_PLAN_CASES"


def recorded(scenario: str) -> dict:
    """The facts state.read parsed from a recorded `ip -batch` of `ip -j` output."""
    from fakes import RecordingRunner

    from veth_wrap.kernel import state
    from veth_wrap.run.runner import Result

    text = (ROOT / "ip" / f"{scenario}.out").read_text()
    runner = RecordingRunner(lambda argv, stdin: Result(argv, text, "", 0))
    lines = (ROOT / "ip" / f"{scenario}.in").read_text().splitlines()
    order = [line.split()[2] for line in lines if line.endswith("addr show")]
    fwd = [line.split()[2] for line in lines if "sysctl" in line]
    return state.read(order, runner, forwarding=fwd)


def facts_of(case: dict) -> dict:
    """The case's facts: none, or a recorded scenario."""
    facts = case.get("facts", "empty")
    return {} if facts == "empty" else recorded(facts["recorded"])


def lab_of(spec: dict):
    """The Lab the CLI builds from `create` words or a lab file's text (its dry run, run
    in-process with the planning replaced by a recorder)."""
    from inprocess import vethwrap

    from veth_wrap import api

    if "create" in spec:
        argv, text = ["create", *spec["create"], "--dry-run"], None
    else:
        argv, text = ["up", "-f", "-", "--dry-run", *spec.get("args", [])], spec["file"]
    seen = []

    def record(lab, runner=None):
        seen.append(lab)
        return plan_steps.Plan()

    with mock.patch.object(api, "plan", record), mock.patch.object(api, "update_plan", record):
        done = vethwrap(*argv, input=text)
    assert done.exit_code == 0 and len(seen) == 1, done.stderr
    return seen[0]


def compile_case(case: dict) -> dict:
    """The case's plan, in the stable form that the expected output holds."""
    from veth_wrap import api
    from veth_wrap.compile.create import create_plan
    from veth_wrap.compile.destroy import destroy_plan
    from veth_wrap.kernel import caps
    from veth_wrap.kernel.inventory import labs
    from veth_wrap.model import labservices

    facts, options = facts_of(case), case.get("options", {})
    if "destroy" in case:
        return stable(destroy_plan(case["destroy"], facts, labs(facts)))
    lab = lab_of(case["lab"])
    plan = create_plan(lab, facts, None, options.get("netem", True),
                       options.get("host_ipv6", True))
    if options.get("name_files", True):  # as none were on disk yet
        with mock.patch.object(caps, "neighbour_table", lambda version: None):  # no /proc
            plan = api.with_hosts(plan, lab, {})
    form = stable(plan)
    services = labservices.commands(lab)
    return {**form, "services": services} if services else form


def stable(plan) -> dict:
    """Notes, and each op per namespace in order: what a regrouping into steps keeps."""
    by_netns: dict[str, list[dict]] = {}
    for step in plan.steps:
        for op in step.ops:
            where = _where(step, op)
            by_netns.setdefault(where, []).append(_op(step, op, where))
    return {"notes": list(plan.notes), "ops": dict(sorted(by_netns.items()))}


def _where(step, op) -> str:
    """The namespace an op belongs to: its step's, else the one it names from the root."""
    if op.kind in plan_steps.FILE_KINDS:
        return "files"
    return step.netns or op.netns or "root"


def _op(step, op, where: str) -> dict:
    found: dict[str, Any] = {"kind": op.kind.value, "target": op.target,
                             "words": shlex.join(op.args)}
    if step.program != "ip":
        found["program"] = step.program
    if op.netns and op.netns != where:
        found["also"] = op.netns  # a veth's far end
    if op.undo:
        found["undo"] = shlex.join(op.undo)
        if op.undo_program != "ip":
            found["undo_program"] = op.undo_program
        if op.undo_netns and op.undo_netns != where:
            found["undo_in"] = op.undo_netns
    if step.input is not None:
        found["input"] = step.input
    return found


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def render(case: dict) -> str:
    """The case as JSON, an op or a list of words a line, so that a diff shows what changed."""
    ops: dict[str, str] = {}

    def compact(value):
        if isinstance(value, dict) and "kind" in value and "words" in value or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)):
            key = f"@line{len(ops)}@"
            ops[key] = json.dumps(value, ensure_ascii=False)
            return key
        if isinstance(value, dict):
            return {k: compact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [compact(v) for v in value]
        return value

    text = json.dumps(compact(case), indent=2, ensure_ascii=False)
    for key, line in ops.items():
        text = text.replace(f'"{key}"', line)
    return text + "\n"
