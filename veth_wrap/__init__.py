"""vethwrap: build, verify, explain and tear down network-namespace labs with iproute2.

Who owns what:
  names        names, interface naming, ownership marks
  topology     Lab, End, Link, Bridge, Route, Kind; shapes: pair/bridge/chain/mesh -> Lab
  labfile      YAML lab files -> Lab (labparts: bridges, routes); graph: text/dot/mermaid
  plan         Op/Step/Plan; compile: Lab + kernel -> create Plan; teardown: destroy Plan
  diff         edited labs: removals of what a Lab dropped, then what it added
  apply        runs a Plan, rolls back on failure; lock: one writer at a time
  runner       the only module that starts processes
  state        reads the kernel (ip -j); inventory finds labs from marks
  verify/probe/reach/ping/matrix   reachability checks
  api          the library behind the CLI; cli*, views, showing, output: the command line
  pytest_plugin  the `vethwrap_lab` fixture (entry point pytest11)

Public API (imported lazily, so `import veth_wrap` stays cheap):
  Lab, build (shapes.build), load (labfile.load), plan, apply, create, verify, destroy
  (`veth_wrap.plan` is the function; import the module as `from veth_wrap.plan import Plan`)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "Lab": ("topology", "Lab"),
    "Kind": ("topology", "Kind"),
    "build": ("shapes", "build"),
    "load": ("labfile", "load"),
    "parse": ("labfile", "parse"),
    "plan": ("api", "plan"),
    "apply": ("apply", "apply"),
    "create": ("api", "create"),
    "update": ("diff", "update"),
    "verify": ("verify", "verify"),
    "destroy": ("api", "destroy"),
    "draw": ("graph", "draw"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'veth_wrap' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """Keeps `veth_wrap.plan`, `.apply`, `.verify` the functions once their modules load."""

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system sets a package attribute for each submodule it loads; three
        # submodules share their names with exported functions, which must win.
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
