"""Hostile and odd input: refused with exit 2 and one line; what is accepted is shell-safe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from faultip import differences, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess import vethwrap

from veth_wrap.compile.create import create_plan
from veth_wrap.errors import UsageError
from veth_wrap.model import names, shapes
from veth_wrap.model.topology import Kind
from veth_wrap.run import commands

HOSTILE_NAMES = [
    "a;rm -rf x", "a b", "$(touch pwned)", "`id`", "a|b", "a&b", "a>b", "x'y", 'x"y', "..", ".",
    "../etc", "a/b", "/", "-rf", "--all", "-", "ns\n1", "ns\t1", "nś", "名前", "\x00ns", "a*",
    "a?", "~root", "{a,b}", "a\\b", "x" * 65, "", " ", "é" * 10, "a=b;c",
]
HOSTILE_SUBNETS = [
    "10.0.0.0/33", "10.0.0.1/32", "10.0.0.0/31", "10.0.0.0", "fd00::1/128", "10.0.0.0/-1",
    "10.0.0.0/24; id", "$(id)", "300.0.0.0/24", "10.0.0.0/24/24", " 10.0.0.0/24 x",
]
FIGURES = {"hostile": len(HOSTILE_NAMES) + len(HOSTILE_SUBNETS)}


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_by_validation(name):
    with pytest.raises(UsageError) as caught:
        shapes.build([name, "ok0"])
    assert caught.value.exit_code == 2 and "\n" not in caught.value.line()
    with pytest.raises(UsageError):
        shapes.build(["ok0", "ok1"], lab=name)


@pytest.mark.parametrize("subnet", HOSTILE_SUBNETS)
def test_hostile_subnets_are_refused(subnet):
    for kind in (Kind.PAIR, Kind.CHAIN):
        with pytest.raises(UsageError) as caught:
            shapes.build(["ok0", "ok1"], kind=kind, subnet=subnet)
        assert "\n" not in caught.value.line()


@pytest.mark.integration
def test_cli_refuses_hostile_input_without_change(netns):
    good = netns.name()
    before = snapshot([])
    for args in (["a;id", good], ["$(id)", good], [good, "-x"], ["..", good], ["名前", good],
                 [good, netns.name(), "--subnet", "fd00::7/128"],
                 [good, netns.name(), "--subnet", "10.0.0.7/32"],
                 [good, netns.name(), "--lab", "a b"]):
        result = vethwrap("create", *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, (args, result.stderr)
    assert not differences(before, snapshot([]))


_STUB = r"""#!/bin/sh
n=$(( $(cat "$LOG/n" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$LOG/n"
printf '%s\0' "$@" > "$LOG/argv.$n"
for a in "$@"; do [ "$a" = "-batch" ] && cat > "$LOG/stdin.$n"; done
exit 0
"""

NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
NAMES = st.one_of(st.text(NAME_CHARS, max_size=20),
                  st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
SUBNETS = st.one_of(st.none(), st.text(max_size=20),
                    st.builds(lambda a, p: f"{a}/{p}", st.ip_addresses(v=4), st.integers(0, 33)),
                    st.builds(lambda a, p: f"{a}/{p}", st.ip_addresses(v=6), st.integers(0, 128)))


def _replay(script: list[str], tmp: Path) -> list[tuple[tuple[str, ...], str]]:
    """Run the dry-run script with `sh -e`, ip replaced by a stub that records argv and stdin."""
    stub = tmp / "bin" / "ip"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text(_STUB)
    stub.chmod(0o755)
    log = tmp / "log"
    log.mkdir(exist_ok=True)
    for old in log.iterdir():
        old.unlink()
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin", "LOG": str(log)}
    subprocess.run(["sh", "-e"], input="\n".join(script) + "\n", env=env, check=True,
                   text=True, timeout=60)
    calls = []
    for n in range(1, int((log / "n").read_text()) + 1 if (log / "n").exists() else 1):
        argv = tuple((log / f"argv.{n}").read_bytes().decode().split("\0")[:-1])
        stdin = log / f"stdin.{n}"
        calls.append((argv, stdin.read_text() if stdin.exists() else None))
    return calls


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=NAMES, second=NAMES, lab=st.one_of(st.none(), NAMES), subnet=SUBNETS,
       kind=st.sampled_from([None, Kind.PAIR, Kind.CHAIN, Kind.BRIDGE, Kind.MESH]))
def test_what_validation_accepts_round_trips_through_sh(first, second, lab, subnet, kind,
                                                        tmp_path):
    try:
        built = shapes.build([first, second], kind=kind, subnet=subnet, lab=lab)
    except UsageError as refused:
        assert refused.exit_code == 2 and "\n" not in refused.line()
        return
    for name in (first, second, built.name):
        assert names._SAFE.match(name)
    plan = create_plan(built, {})
    expected = [(("ip", *commands.argv(step)[1:]), commands.stdin(step)) for step in plan.steps]
    replayed = _replay(commands.script(plan, "dry run"), tmp_path)
    got = [((("ip",) + argv), stdin) for argv, stdin in replayed]
    assert got == expected
