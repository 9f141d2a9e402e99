"""vethwrap: build, verify, explain and tear down network-namespace labs with iproute2.

The package is layered; each layer imports only those below it (setup.cfg's import-linter
contract checks it):

  cli/      typer commands and rendering; the only code that prints; maps errors to exits
  multihost one host's share of a lab over several hosts: pick the host, build, verify
  pytest_plugin   the vethwrap_lab fixture
  faults/   faults for the software under test: partitions, heal, flaps, timed impairments,
            timelines (over api: its services and link changes)
  api       the library facade the CLI and the pytest fixture use
  lifecycle/  software in labs: services, what destroy stops first, exec, capture, logs
  explain/  diagnose and doctor: evidence read from the kernel -> causes -> fixes
  check/    verify, ping, the in-process ICMP probe, reachability in rounds, pingall
  compile/  (Lab, facts) -> a plan of what to change, no I/O, nothing of how it runs
  kernel/   the kernel read into fact types (beside compile/: neither imports the other);
            every read of it: reader (one function a kind of object), readings (many at once)
  run/      the only place that starts processes: runner; commands (a step as its process
            and its dry-run text); schedule (how a plan becomes processes, which at once,
            where verification's reads ride); transaction (the walker: apply, rollback);
            filesteps; lock
  model/    topology, names and marks, shapes, link options, lab files, drawings, facts
  steps     the plan: Op (a Kind, its target, words and undo), Step (ops in one namespace), Plan
  errors    at the bottom: exceptions with ExitStatus

Public API (imported lazily, so `import veth_wrap` stays cheap):
  Lab, Kind, build, load, parse, plan, script (a plan's dry run), apply, create, update,
  verify, destroy, draw,
  start (a service in a lab's namespace, in a cgroup of its own: a Service with pid, log,
  wait_port(), wait_cmd(), stop()), Service, Limits, processes, stop, restart. (`start`, not
  `run`: `veth_wrap.run` is the process layer.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Lab": ("model.topology", "Lab"),
    "Kind": ("model.topology", "Kind"),
    "build": ("model.shapes", "build"),
    "load": ("model.labfile", "load"),
    "parse": ("model.labfile", "parse"),
    "plan": ("api", "plan"),
    "apply": ("run.transaction", "apply"),
    "script": ("run.transaction", "script"),
    "create": ("api", "create"),
    "update": ("api", "update"),
    "verify": ("check.verify", "verify"),
    "destroy": ("api", "destroy"),
    "pingall": ("api", "pingall"),
    "draw": ("model.drawing", "draw"),
    "start": ("api", "start"),
    "Service": ("api", "Service"),
    "processes": ("api", "processes"),
    "stop": ("api", "stop"),
    "restart": ("api", "restart"),
    "Limits": ("model.servicespec", "Limits"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'veth_wrap' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(f"veth_wrap.{module}"), attr)
    globals()[name] = value
    return value
