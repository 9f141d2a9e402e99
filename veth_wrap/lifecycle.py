"""Software in the lab (part of the api layer): services, and the processes destroy stops.

A service is a process started inside a namespace in a session of its own, its output in a
log under /run/vethwrap/logs; its name lives in its environment (VETHWRAP_SERVICE), read back
from /proc, so no state file can go stale. destroy ends every process in the namespaces it
deletes, whoever started it, before deleting them.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Optional, Sequence

from veth_wrap.compile import hosts
from veth_wrap.compile.destroy import Teardown
from veth_wrap.compile.uplink import UPLINK
from veth_wrap.errors import ConflictError, PreflightError, ServiceFailed, UsageError
from veth_wrap.kernel import hostsfiles, inventory, procs, state
from veth_wrap.model import names
from veth_wrap.model import procfacts as pf
from veth_wrap.model.procfacts import LOG_ROOT, Proc, Stopped, check_service_name, log_dir
from veth_wrap.run import services
from veth_wrap.run.lock import locked
from veth_wrap.run.runner import Runner, default_runner, exec_replace, require
from veth_wrap.steps import Plan

GRACE = 2.0  # seconds between SIGTERM and SIGKILL
ROUNDS = 5  # scans for processes that appeared while others were being stopped
TAIL = 15  # log lines shown when a service fails to start


def complete(plan: Teardown, targets: list[str], facts: dict, views: dict, lab: Optional[str],
             everything: bool, runner: Runner) -> Teardown:
    """The destroy plan with processes to stop, and hosts files and logs to remove."""
    doomed_names = [op.args[2] for step in plan.steps for op in step.ops
                    if op.args[:2] == ("netns", "del")]
    doomed = procs.inodes(doomed_names)
    going = _labs_going(views, doomed_names, targets, facts, lab, everything)
    holders = {}
    for inode, (mark, pid) in procs.orphans(procs.named_inodes(), runner).items():
        if everything or mark.lab in going:
            doomed[inode] = f"(unnamed, lab {mark.lab})"
            holders[inode] = pid
    files = list(hostsfiles.read(targets).values())
    files += [f for name in going for f in hostsfiles.marked(name)]
    logs = [log_dir(sorted(facts[ns].labs())[0], ns) for ns in doomed_names if facts[ns].labs()]
    logs = [path for path in logs + [f"{LOG_ROOT}/{name}" for name in going]
            if os.path.exists(path)]
    gateways = procs.gateways(None) if everything else procs.gateways(
        doomed_names + [ns for ns, name in plan.links if name == UPLINK], labs=going)
    return dataclasses.replace(plan, steps=plan.steps + hosts.removal_steps(files, logs),
                               pending=procs.scan(doomed) + gateways, doomed=doomed,
                               holders=holders, gateways=gateways)


def end_gateways(gateways: list[Proc], grace: float = GRACE) -> list[Stopped]:
    """End uplink gateways (pasta runs in the host's namespace: no namespace scan finds it)."""
    return services.stop(gateways, grace) if gateways else []


def end_stray_gateways(namespaces: Iterable[str], grace: float = GRACE) -> list[Stopped]:
    """End the gateways of namespaces that are gone (a rollback deleted them)."""
    stray = [p for p in procs.gateways(namespaces) if procs.netns_inode(p.netns or "") is None]
    return end_gateways(stray, grace)


@contextmanager
def pinned(teardown: Teardown) -> Iterator[None]:
    """Hold every doomed namespace open while destroy runs.

    The kernel reuses a freed namespace's inode number; held open, a namespace keeps it, so
    the scan after the deletion cannot mistake another run's new namespace for one of ours.
    """
    fds = []
    try:
        for inode, label in list(teardown.doomed.items()):
            holder = teardown.holders.get(inode)
            path = f"/proc/{holder}/ns/net" if holder else f"{procs.NETNS_RUN}/{label}"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # gone already: nothing can run in it any more
                teardown.doomed.pop(inode)
                continue
            fds.append(fd)
            if os.fstat(fd).st_ino != inode:
                teardown.doomed.pop(inode)
        yield
    finally:
        for fd in fds:
            os.close(fd)


def _labs_going(views: dict, doomed: list[str], targets: list[str], facts: dict,
                lab: Optional[str], everything: bool) -> set[str]:
    """The labs of which nothing stays (a namespace named like a gone lab counts too)."""
    if everything:
        return set(views) | set(hostsfiles.log_labs()) | {
            f.mark.lab for f in hostsfiles.marked()}
    if lab:
        return {lab}
    gone = set(doomed)
    found = {view.name for view in views.values() if view.created and set(view.created) <= gone}
    # `destroy ns0 ns1` after the namespaces went by hand: lab ns0 (the default name) is gone
    return found | {name for name in targets if name not in facts and name not in views}


def stop_in_dropped(steps: Plan) -> list[Stopped]:
    """End the processes in namespaces a plan deletes (an edited lab dropped them)."""
    dropped = [op.args[2] for step in steps.steps for op in step.ops
               if op.args[:2] == ("netns", "del")]
    if not dropped:
        return []
    gateways = procs.gateways(dropped)  # read now: the namespaces go when the plan runs
    return stop_inside(procs.inodes(dropped), GRACE) + end_gateways(gateways)


def stop_inside(doomed: Mapping[int, str], grace: float) -> list[Stopped]:
    """Stop every process in the doomed namespaces, again until none is left."""
    stopped: list[Stopped] = []
    for _ in range(ROUNDS):
        found = procs.scan(dict(doomed))
        if not found:
            return stopped
        stopped += services.stop(found, grace)
    raise services.StillRunning(f"processes keep starting in {sorted(doomed.values())[0]}",
                                "find what starts them with 'vethwrap ps', then destroy again")


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

    def alive(self) -> bool:
        """True while the process runs inside its namespace."""
        if self.process is not None and self.process.poll() is not None:
            return False
        return services.netns_inode_of(self.pid) == self.netns_inode

    def wait_port(self, port: int, timeout: float = 10.0) -> float:
        """Return (seconds taken) once something listens on TCP port inside the namespace.

        Raises ServiceFailed, with the log's last lines, when the service ends first or the
        deadline passes (then the service is stopped).
        """
        began = time.monotonic()
        while True:
            ports = procs.listening(self.pid) if self.alive() else None
            if ports is None:
                raise self._failed(f"{self.name} in {self.namespace} ended before anything "
                                   f"listened on port {port}{self._status()}",
                                   f"see its log: vethwrap logs {self.namespace} {self.name}")
            if port in ports:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                self.stop()
                raise self._failed(f"nothing listened on port {port} in {self.namespace} "
                                   f"within {timeout:g} s; {self.name} was stopped",
                                   "check the port and the log, or raise --wait-timeout")
            services.exited(self.pid, 0.02)  # wakes at once if the service ends

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
            services.exited(self.pid, 0.02)

    def stop(self, grace: float = GRACE) -> list[Stopped]:
        """Stop the service and what it started in its session, inside its namespace."""
        found = procs.scan({self.netns_inode: self.namespace})
        mine = [p for p in found if p.pid == self.pid or p.session == self.pid]
        done = services.stop(mine, grace)
        if self.process is not None:
            self.process.poll()  # reap it: a zombie child would keep the pid
        return done

    def log_text(self) -> str:
        """What the service has written so far."""
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, count: int = TAIL) -> list[str]:
        """The log's last lines."""
        return self.log_text().splitlines()[-count:]

    def to_json(self) -> dict:
        """The JSON shape `vethwrap run --json` prints."""
        return {"namespace": self.namespace, "name": self.name, "pid": self.pid,
                "log": self.log, "lab": self.lab}

    def _status(self) -> str:
        code = self.process.poll() if self.process is not None else None
        return f" (exit status {code})" if code is not None else ""

    def _failed(self, message: str, hint: str) -> ServiceFailed:
        return ServiceFailed(message, hint, self.log_tail())


def lab_of(namespace: str, runner: Optional[Runner] = None) -> str:
    """The lab a namespace belongs to; refuses one that does not exist or is not vethwrap's."""
    names.check_netns(namespace)
    runner = runner or default_runner()
    if procs.netns_inode(namespace) is None:
        raise UsageError(f"namespace {namespace!r} does not exist", "see 'vethwrap show'")
    st = state.read([namespace], runner, routes=False).get(namespace)
    labs = sorted(st.labs()) if st else []
    if not labs:
        raise UsageError(f"namespace {namespace!r} is not part of a vethwrap lab",
                         f"build one first: vethwrap create {namespace} OTHER")
    return labs[0]


def start(namespace: str, argv: Sequence[str], name: Optional[str] = None,
          env: Optional[Mapping[str, str]] = None, wait_port: Optional[int] = None,
          timeout: float = 10.0, runner: Optional[Runner] = None, log: bool = True,
          **popen: object) -> Service:
    """Start argv in the background inside a lab's namespace; returns its Service.

    log=False keeps the caller's stdio (popen keywords as for subprocess.Popen).
    """
    argv = list(argv)
    if not argv:
        raise UsageError("no command given", f"e.g. vethwrap run {namespace} -- sleep 60")
    service = _launch(namespace, argv, name, env, runner, log, **popen)
    entered = services.entered(service.pid, service.netns_inode, time.monotonic() + 5)
    if not entered:
        raise service._failed(f"{service.name} in {namespace} ended as it started"
                              f"{service._status()}",
                              "see the log lines above")
    if wait_port is not None:
        service.wait_port(wait_port, timeout)
    return service


def _launch(namespace: str, argv: list[str], name: Optional[str],
            env: Optional[Mapping[str, str]], runner: Optional[Runner], log: bool,
            **popen: object) -> Service:
    """Start argv in a lab's namespace, named and logged, under the lock; its Service."""
    name = check_service_name(name or os.path.basename(argv[0]))
    lab = lab_of(namespace, runner)
    if shutil.which(argv[0]) is None:
        raise PreflightError(f"{argv[0]}: command not found", "check the name and PATH")
    inode = procs.netns_inode(namespace)
    with locked():
        _refuse_duplicate(namespace, inode, name)
        fd, path = services.open_log(lab, namespace, name) if log else (None, "")
        environ = dict(os.environ, **(env or {}),
                       **{pf.ENV_SERVICE: name, pf.ENV_LAB: lab, pf.ENV_NETNS: namespace})
        try:
            process = services.start(namespace, argv, environ, fd, **popen)
        finally:
            if fd is not None:
                os.close(fd)
    return Service(namespace, name, process.pid, path, lab, inode, process)


def _refuse_duplicate(namespace: str, inode: int, name: str) -> None:
    for proc in procs.scan({inode: namespace}):
        if proc.service == name:
            raise ConflictError(f"a service named {name} already runs in {namespace} "
                                f"(pid {proc.pid})", f"stop it first (vethwrap stop {namespace} "
                                f"{name}) or give another --name")


def processes(namespaces: Iterable[str] = (), lab: Optional[str] = None,
              runner: Optional[Runner] = None) -> list[Proc]:
    """Every process in vethwrap's namespaces (or the named ones, or one lab's)."""
    runner = runner or default_runner()
    namespaces = list(namespaces)
    for name in namespaces:
        if procs.netns_inode(names.check_netns(name)) is None:
            raise UsageError(f"namespace {name!r} does not exist", "see 'vethwrap show'")
    facts, root = inventory.scan(namespaces or None, runner, routes=False)
    views = inventory.labs(facts, root)
    if namespaces:
        chosen = namespaces
    elif lab:
        view = views.get(lab)
        chosen = (view.members + ([view.hub] if view.hub else [])) if view else []
    else:
        chosen = [ns for ns, st in facts.items() if st.labs()]
    wanted = procs.inodes(chosen)
    if not namespaces:
        for inode, (mark, _) in procs.orphans(procs.named_inodes(), runner).items():
            if lab is None or mark.lab == lab:
                wanted[inode] = f"(unnamed, lab {mark.lab})"
    # the uplink gateways run in the host's namespace, serving one of these
    gateways = procs.gateways(namespaces) if namespaces else \
        procs.gateways([], labs=[lab]) if lab else procs.gateways(None)
    return sorted(procs.scan(wanted) + gateways, key=lambda p: (p.netns or "", p.pid))


def stop(namespace: str, target: str, grace: float = GRACE) -> list[Stopped]:
    """Stop a service by name (with what it started in its session) or a process by PID."""
    inode = procs.netns_inode(names.check_netns(namespace))
    if inode is None:
        raise UsageError(f"namespace {namespace!r} does not exist", "see 'vethwrap show'")
    found = procs.scan({inode: namespace})
    if target.isdigit():
        chosen = [p for p in found if p.pid == int(target)]
    else:
        leaders = {p.pid for p in found if p.service == target}
        chosen = [p for p in found if p.pid in leaders or p.session in leaders]
    if not chosen:
        raise UsageError(f"no process {target} runs in {namespace}",
                         f"see what does: vethwrap ps {namespace}")
    return services.stop(chosen, grace)


def log_path(namespace: str, name: str) -> str:
    """The log file of service `name` in a namespace (the newest, if several labs had one)."""
    names.check_netns(namespace)
    check_service_name(name)
    found = glob.glob(f"{glob.escape(LOG_ROOT)}/*/{namespace}/{name}.log")
    if not found:
        raise UsageError(f"no log of a service {name} in {namespace}",
                         f"see the services: vethwrap ps {namespace}")
    return max(found, key=os.path.getmtime)


def capture_argv(namespace: str, interface: str, path: Optional[str] = None,
                 count: Optional[int] = None, filter_expr: Optional[str] = None,
                 background: bool = False, runner: Optional[Runner] = None) -> list[str]:
    """The tcpdump command that captures on an interface inside a namespace."""
    require("tcpdump")
    if procs.netns_inode(names.check_netns(namespace)) is None:
        raise UsageError(f"namespace {namespace!r} does not exist", "see 'vethwrap show'")
    st = state.read([namespace], runner or default_runner(), routes=False).get(namespace)
    if st is None or interface not in st.links:
        have = ", ".join(sorted(st.links)) if st else "nothing"
        raise UsageError(f"{namespace} has no interface {interface!r}", f"it has: {have}")
    # -Z root: Debian's tcpdump otherwise opens the file as user tcpdump, after dropping root
    argv = ["tcpdump", "-n", "-i", interface, "-Z", "root"]
    if path:
        argv += ["-U", "-w", path]  # -U: each packet reaches the file at once
    elif background:
        argv.append("-l")  # line-buffered, so the log fills as packets come
    if count:
        argv += ["-c", str(count)]
    return argv + ([filter_expr] if filter_expr else [])


def exec_in(namespace: str, argv: Sequence[str]) -> None:
    """Replace this process with argv run inside the namespace (stdio and status pass)."""
    exec_replace(["ip", "netns", "exec", namespace, *argv])


EXEC_WAIT = 10.0  # seconds an exec command may take before it counts as a service


def run_execs(execs: Sequence[tuple[str, Sequence[str]]], made: set[str],
              wait: float = EXEC_WAIT) -> list[str]:
    """Run each (namespace, argv) whose namespace this run made, in order; notes back.

    A command that ends must end well (else ServiceFailed with its log); one still running
    after `wait` seconds stays, as a service of the lab (vethwrap ps, logs, stop).
    """
    import re
    import shlex
    import subprocess

    notes = []
    for i, (namespace, argv) in enumerate(execs):
        if namespace not in made:
            continue
        base = re.sub(r"[^A-Za-z0-9_.-]", "-", os.path.basename(argv[0]))
        # no wait to see it enter the namespace: `ip addr add` may be done before a look
        service = _launch(namespace, list(argv), f"exec{i + 1}-{base}"[:64], None, None, True)
        try:
            code = service.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            notes.append(f"{namespace}: {shlex.join(argv)} still runs, as service "
                         f"{service.name}")
            continue
        if code != 0:
            raise service._failed(f"in {namespace}, {shlex.join(argv)} failed (exit status "
                                  f"{code})", f"see 'vethwrap logs {namespace} {service.name}'"
                                  "; the lab stays for a look")
    return notes
