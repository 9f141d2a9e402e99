"""Services: a program started in a lab's namespace inside a cgroup of its own.

The cgroup (vethwrap/LAB:NS:NAME in the unified hierarchy) is the service: the kernel keeps
every process it starts there, whatever forks, daemonises or rewrites its environment, and
says when the last one is gone. Its output goes to a log under /run/vethwrap/logs, beside a
record of what it was asked to be (restart reads it; the kernel's limits win over it).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

from veth_wrap.errors import (
    ConflictError,
    NoSuchNamespace,
    PreflightError,
    ServiceFailed,
    UsageError,
)
from veth_wrap.kernel import procs, state
from veth_wrap.lifecycle.teardown import members
from veth_wrap.model import names
from veth_wrap.model import procfacts as pf
from veth_wrap.model.procfacts import Stopped
from veth_wrap.model.servicespec import (
    Limits,
    ServiceSpec,
    WaitPort,
    cgroup_name,
    check_env,
    check_service_name,
    parse_wait_port,
)
from veth_wrap.run import cgroups, rundir, services
from veth_wrap.run.lock import locked
from veth_wrap.run.runner import Runner, default_runner

GRACE = 2.0  # seconds between SIGTERM and SIGKILL
TAIL = 15  # log lines shown when a service fails to start
TICK = 0.01  # seconds between looks at a service that is starting
PROBE_MAX = 2.0  # seconds one --wait-cmd attempt may take


@dataclass
class Service:
    """A service running in a namespace of a lab: pid, name, log; wait for it, stop it."""

    namespace: str
    name: str
    pid: int
    log: str
    lab: str
    netns_inode: int = 0
    process: Optional[object] = field(default=None, repr=False, compare=False)
    spec: Optional[ServiceSpec] = field(default=None, repr=False, compare=False)

    @property
    def cgroup(self) -> str:
        """The folder of its cgroup under vethwrap's."""
        return cgroup_name(self.lab, self.namespace, self.name)

    def alive(self) -> bool:
        """True while any process of the service runs (its cgroup is populated)."""
        if self.process is not None:
            self.process.poll()  # reap the first process: a daemon's parent exits at once
        return cgroups.populated(self.cgroup)

    def pids(self) -> list[int]:
        """The processes of the service now."""
        return cgroups.members(self.cgroup)

    def wait_port(self, port: Union[int, str, WaitPort], timeout: float = 10.0) -> float:
        """Return (seconds taken) once the service itself listens on port (TCP, or 'N/udp').

        Raises ServiceFailed, with the log's last lines, when the service ends first or the
        deadline passes (then the service is stopped).
        """
        wanted = port if isinstance(port, WaitPort) else parse_wait_port(str(port))
        return self._wait(lambda: procs.listens(self.pids(), wanted),
                          f"listening on port {wanted}", timeout, "--wait-port")

    def wait_cmd(self, argv: Sequence[str], timeout: float = 10.0) -> float:
        """Return (seconds taken) once argv, run inside the namespace, exits 0."""
        deadline = time.monotonic() + timeout
        return self._wait(lambda: services.probe(self.namespace, argv, min(
            PROBE_MAX, max(deadline - time.monotonic(), 0.1))),
            f"'{shlex.join(argv)}' succeeding", timeout, "--wait-cmd")

    def _wait(self, ready, goal: str, timeout: float, option: str) -> float:
        """Poll ready() while the service lives; goal says what it waits for."""
        began = time.monotonic()
        while True:
            alive = self.alive()
            if alive and ready():
                return time.monotonic() - began
            if not alive:
                cgroups.remove(self.cgroup)
                raise self._failed(f"{self.name} in {self.namespace} ended before {goal}"
                                   f"{self._status()}",
                                   f"see its log: vethwrap logs {self.namespace} {self.name}")
            if time.monotonic() - began > timeout:
                self.stop()
                raise self._failed(f"{self.name} in {self.namespace} was not {goal} within "
                                   f"{timeout:g} s; it was stopped",
                                   f"check {option} and the log, or raise --wait-timeout")
            time.sleep(TICK)

    def wait_log(self, text: str, timeout: float = 5.0) -> None:
        """Wait until the log holds text (tcpdump's "listening on"); ServiceFailed otherwise."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if not self.alive():
                raise self._failed(f"{self.name} in {self.namespace} ended{self._status()}",
                                   "see the log lines above")
            if time.monotonic() > deadline:
                raise self._failed(f"{self.name} did not print {text!r} within {timeout:g} s",
                                   f"see 'vethwrap logs {self.namespace} {self.name}'")
            time.sleep(TICK)

    def stop(self, grace: float = GRACE) -> list[Stopped]:
        """Stop every process of the service: SIGTERM, grace, then cgroup.kill."""
        done = services.stop(members([self.cgroup]), grace, [self.cgroup])
        if self.process is not None:
            self.process.poll()
        return done

    def log_text(self) -> str:
        """What the service has written so far."""
        return read_log(self.log)

    def log_tail(self, count: int = TAIL) -> list[str]:
        """The log's last lines."""
        return self.log_text().splitlines()[-count:]

    def to_json(self) -> dict:
        """The JSON shape `vethwrap run --json` prints."""
        limits = self.spec.limits if self.spec else Limits()
        return {"namespace": self.namespace, "name": self.name, "pid": self.pid,
                "log": self.log, "lab": self.lab, "cgroup": cgroups.path(self.cgroup),
                "limits": limits.to_json()}

    def _status(self) -> str:
        code = self.process.poll() if self.process is not None else None
        return f" (exit status {code})" if code is not None else ""

    def _failed(self, message: str, hint: str) -> ServiceFailed:
        return ServiceFailed(message, hint, self.log_tail())


def read_log(path: str) -> str:
    """A log's text, read through directory fds (a link on the way is refused)."""
    parts = rundir.parts_of(path) if path else None
    fd = rundir.read_file(parts[:-1], parts[-1]) if parts else None
    if fd is None:
        return ""
    with os.fdopen(fd, errors="replace") as f:
        return f.read()


def lab_of(namespace: str, runner: Optional[Runner] = None) -> str:
    """The lab a namespace belongs to; refuses one that does not exist or is not vethwrap's."""
    names.check_netns(namespace)
    runner = runner or default_runner()
    if procs.netns_inode(namespace) is None:
        raise NoSuchNamespace(namespace)
    st = state.read([namespace], runner, routes=False).get(namespace)
    labs = sorted(st.labs()) if st else []
    if not labs:
        raise UsageError(f"namespace {namespace!r} is not part of a vethwrap lab",
                         f"build one first: vethwrap create {namespace} OTHER")
    return labs[0]


def start(namespace: str, argv: Sequence[str], name: Optional[str] = None,
          env: Optional[Mapping[str, str]] = None,
          wait_port: Union[int, str, WaitPort, None] = None, timeout: float = 10.0,
          runner: Optional[Runner] = None, log: bool = True, wait_cmd: Sequence[str] = (),
          limits: Limits = Limits(), **popen: object) -> Service:
    """Start argv in the background inside a lab's namespace, in a cgroup of its own.

    wait_port ('80', '53/udp') or wait_cmd (argv run inside until it exits 0) make it return
    once the service is ready. log=False keeps the caller's stdio (popen keywords as for
    subprocess.Popen).
    """
    argv = list(argv)
    if not argv:
        raise UsageError("no command given", f"e.g. vethwrap run {namespace} -- sleep 60")
    port = None if wait_port is None else (
        wait_port if isinstance(wait_port, WaitPort) else parse_wait_port(str(wait_port)))
    spec = ServiceSpec(check_service_name(name or os.path.basename(argv[0])), tuple(argv),
                       check_env(env or {}), port, tuple(wait_cmd), limits)
    if limits:
        cgroups.check_limits(limits)
    return launch(namespace, lab_of(namespace, runner), spec, timeout, log, **popen)


def launch(namespace: str, lab: str, spec: ServiceSpec, timeout: float = 10.0,
           log: bool = True, **popen: object) -> Service:
    """Start a checked spec in its cgroup and wait until it is ready."""
    service = spawn(namespace, lab, spec, log, wait_entered=True, **popen)
    folder, process = cgroup_name(lab, namespace, spec.name), service.process
    if not service.alive():  # a daemon's first process may be gone: its cgroup tells
        cgroups.remove(folder)
        raise service._failed(f"{spec.name} in {namespace} ended as it started"
                              f"{service._status()}", "see the log lines above")
    if spec.wait_port is not None:
        service.wait_port(spec.wait_port, timeout)
    if spec.wait_cmd:
        service.wait_cmd(spec.wait_cmd, timeout)
    if process.poll() is not None:  # a daemon: its first process has handed over
        service.pid = min(service.pids(), default=service.pid)
    return service


def spawn(namespace: str, lab: str, spec: ServiceSpec, log: bool = True,
          wait_entered: bool = False, **popen: object) -> Service:
    """Start a checked spec in a fresh cgroup, under the lock; no readiness wait."""
    if shutil.which(spec.argv[0]) is None:
        raise PreflightError(f"{spec.argv[0]}: command not found", "check the name and PATH")
    inode = procs.netns_inode(namespace)
    folder = cgroup_name(lab, namespace, spec.name)
    with locked():
        _refuse_duplicate(namespace, folder, spec.name)
        process, path = _spawn(namespace, lab, spec, folder, log, popen)
        service = Service(namespace, spec.name, process.pid, path, lab, inode, process, spec)
        if wait_entered:
            services.entered(process.pid, inode, time.monotonic() + 5)
    return service


def _spawn(namespace: str, lab: str, spec: ServiceSpec, folder: str, log: bool,
           popen: dict) -> tuple[object, str]:
    """The first process, placed in its fresh cgroup before it execs; its log's path."""
    procs_fd = cgroups.make(folder, spec.limits)
    fd = None
    try:
        fd, path = services.open_log(lab, namespace, spec.name) if log else (None, "")
        services.write_record(lab, namespace, spec.name, json.dumps(spec.to_json()))
        environ = dict(os.environ, **spec.env, **{pf.ENV_SERVICE: spec.name, pf.ENV_LAB: lab,
                                                  pf.ENV_NETNS: namespace})
        return services.start(namespace, spec.argv, environ, fd, procs_fd, **popen), path
    except BaseException:
        cgroups.remove(folder)
        raise
    finally:
        os.close(procs_fd)
        if fd is not None:
            os.close(fd)


def _refuse_duplicate(namespace: str, folder: str, name: str) -> None:
    if cgroups.populated(folder):
        pids = cgroups.members(folder)
        raise ConflictError(f"a service named {name} already runs in {namespace} "
                            f"(pid {pids[0] if pids else '?'})", f"stop it first (vethwrap stop "
                            f"{namespace} {name}) or give another --name")
