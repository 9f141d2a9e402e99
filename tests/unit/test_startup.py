"""Start-up: commands that start no process import neither `sh` nor what they do not use.

Each command runs under `python -X importtime`, as the unprivileged user where that matters;
every module it imports must be from the standard library or in the command's allow-list,
so that a new import on the start-up path fails here and is seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nobody
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAIR = str(ROOT / "examples" / "pair.yaml")
# what every command imports that is not the standard library: the CLI, its completion, typer
BASE = {"veth_wrap", "veth_wrap.cli", "veth_wrap.cli.app", "veth_wrap.cli.common",
        "veth_wrap.cli.complete", "veth_wrap.cli.helpformat", "veth_wrap.cli.faults",
        "veth_wrap.errors", "veth_wrap.model",
        "veth_wrap.model.names", "veth_wrap.model.topology", "typer", "shellingham",
        "annotated_doc"}
OUTPUT = {"veth_wrap.cli.output"}
MODEL = {"veth_wrap.model.labfile", "veth_wrap.model.labparts", "veth_wrap.model.linkopts",
         "veth_wrap.model.foreign", "veth_wrap.model.lanroutes", "veth_wrap.model.linkparts",
         "veth_wrap.model.shapes", "veth_wrap.model.safeyaml", "veth_wrap.model.hosts", "yaml",
         "veth_wrap.model.labservices", "veth_wrap.model.servicespec"}
LIBRARY = {"veth_wrap.api", "veth_wrap.check", "veth_wrap.check.readback",
           "veth_wrap.check.verify", "veth_wrap.compile", "veth_wrap.compile.create",
           "veth_wrap.compile.bridge", "veth_wrap.compile.destroy", "veth_wrap.compile.uplink",
           "veth_wrap.kernel",
           "veth_wrap.kernel.caps",
           "veth_wrap.kernel.inventory", "veth_wrap.kernel.state", "veth_wrap.model.facts",
           "veth_wrap.kernel.readings", "veth_wrap.kernel.reader",
           "veth_wrap.run", "veth_wrap.run.lock", "veth_wrap.run.runner",
           "veth_wrap.run.transaction", "veth_wrap.run.fuse", "veth_wrap.steps",
           "veth_wrap.run.schedule", "veth_wrap.run.readback", "veth_wrap.run.processes",
           "veth_wrap.run.commands", "veth_wrap.run.reads", "veth_wrap.run.together",
           "veth_wrap.run.late", "veth_wrap.run.farside",
           # lab names (name files), services and what destroy stops, labs over hosts
           "veth_wrap.compile.namefiles", "veth_wrap.compile.vxlan", "veth_wrap.kernel.nameread",
           "veth_wrap.kernel.procs", "veth_wrap.lifecycle", "veth_wrap.model.hosts",
           "veth_wrap.model.hostshare", "veth_wrap.model.procfacts", "veth_wrap.run.services",
           "veth_wrap.run.filesteps", "veth_wrap.lifecycle.inlab", "veth_wrap.lifecycle.service",
           "veth_wrap.lifecycle.teardown", "veth_wrap.model.servicespec", "veth_wrap.run.cgroups",
           "veth_wrap.run.rundir",
           # namespaces that were there before; vethwrap's paths opened without links
           "veth_wrap.compile.borrow", "veth_wrap.run.nofollow", "veth_wrap.model.neighbours"}
COMMANDS = {  # name: (run as uid 65534, modules allowed beyond BASE)
    "--help": (False, set()),
    "--version": (False, OUTPUT),
    "validate": (False, OUTPUT | MODEL),
    "graph": (False, OUTPUT | MODEL | {"veth_wrap.model.drawing"}),
    "create --dry-run": (True, OUTPUT | {"veth_wrap.model.linkopts",
                                         "veth_wrap.model.shapes"} | LIBRARY),
}
ARGS = {"--help": ["--help"], "--version": ["--version"], "validate": ["validate", "-f", PAIR],
        "graph": ["graph", "-f", PAIR], "create --dry-run": ["create", "a", "b", "--dry-run"]}
# stdlib packages none of them needs: threads pools, event loops, and what they drag in
NEVER = {"concurrent", "asyncio", "multiprocessing", "sqlite3", "http", "xml", "unittest"}
# what the interpreter's site set-up brings, and the stdlib's own probe for Jython (copy.py)
SITE = ("sitecustomize", "usercustomize", "_distutils_hack", "certifi", "apport_python_hook",
        "org")


def imported(args: list[str], as_nobody: bool) -> set[str]:
    """The modules `python -X importtime -m veth_wrap ARGS` imports (it must succeed)."""
    if as_nobody and os.geteuid() == 0:
        done = nobody.run(*args, flags=("-X", "importtime"))
    else:
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "veth_wrap", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=60,
                              env=dict(os.environ, NO_COLOR="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[-1] for line in done.stderr.splitlines()
            if line.startswith("import time:") and "imported package" not in line]
    return {row.strip() for row in rows}


def _outside_stdlib(modules: set[str]) -> set[str]:
    return {name for name in modules if name.split(".")[0] not in sys.stdlib_module_names
            and not name.startswith("__editable__") and name.split(".")[0] not in SITE}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_that_starts_no_process_imports_only_what_it_uses(command):
    as_nobody, allowed = COMMANDS[command]
    modules = imported(ARGS[command], as_nobody)
    assert "sh" not in modules
    assert not {name for name in modules if name.split(".")[0] in {"rich", "pygments",
                                                                    "markdown_it"}}
    assert not {name.split(".")[0] for name in modules} & NEVER
    extra = {name for name in _outside_stdlib(modules)
             if not name.startswith(("typer.", "yaml.", "shellingham.", "annotated_doc."))}
    assert extra <= BASE | allowed, sorted(extra - BASE - allowed)


def test_the_help_does_not_load_the_library():
    modules = imported(["--help"], False)
    assert not {name for name in modules if name.startswith(("veth_wrap.api",
                                                             "veth_wrap.kernel",
                                                             "veth_wrap.run"))}
