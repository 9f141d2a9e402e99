"""What runs in a lab, found from the kernel: processes, stop, restart, logs, capture, exec."""

from __future__ import annotations

import json
import os
from typing import BinaryIO, Iterable, Optional, Sequence

from veth_wrap.errors import NoSuchNamespace, UsageError
from veth_wrap.kernel import inventory, procs, state
from veth_wrap.lifecycle.service import GRACE, Service, lab_of, launch, spawn
from veth_wrap.lifecycle.teardown import members
from veth_wrap.model import names
from veth_wrap.model.procfacts import Proc, Stopped
from veth_wrap.model.servicespec import (
    Limits,
    ServiceSpec,
    cgroup_name,
    check_service_name,
    parse_cgroup_name,
)
from veth_wrap.run import cgroups, rundir, services
from veth_wrap.run.runner import Runner, default_runner, exec_replace, require


def processes(namespaces: Iterable[str] = (), lab: Optional[str] = None,
              runner: Optional[Runner] = None) -> list[Proc]:
    """Every process in vethwrap's namespaces (or the named ones, or one lab's)."""
    runner = runner or default_runner()
    namespaces = list(namespaces)
    for name in namespaces:
        if procs.netns_inode(names.check_netns(name)) is None:
            raise NoSuchNamespace(name)
    facts, root = inventory.scan(namespaces or None, runner, routes=False)
    views = inventory.labs(facts, root)
    if namespaces:
        chosen = namespaces
    elif lab:
        view = views.get(lab)
        chosen = view.namespaces() if view else []
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
    """Stop a service by name (every process of its cgroup) or a process by PID."""
    inode = procs.netns_inode(names.check_netns(namespace))
    if inode is None:
        raise NoSuchNamespace(namespace)
    if target.isdigit():
        chosen = [p for p in procs.scan({inode: namespace}) if p.pid == int(target)]
        groups = [p.cgroup for p in chosen if p.cgroup]
        done = services.stop(chosen, grace) if chosen else []
        for group in groups:  # its last process gone, the service's cgroup goes too
            if not cgroups.populated(group):
                cgroups.remove(group)
    else:
        groups = service_groups(namespace, check_service_name(target))
        running = [group for group in groups if cgroups.populated(group)]
        done = services.stop(members(groups), grace, groups) if running else []
        for group in groups if not running else []:
            cgroups.remove(group)
    if not done:
        raise UsageError(f"no process {target} runs in {namespace}",
                         f"see what does: vethwrap ps {namespace}")
    return done


def service_groups(namespace: str, name: str) -> list[str]:
    """The cgroups of service `name` in a namespace (of whichever lab), running or empty."""
    return [folder for folder in cgroups.services()
            if parse_cgroup_name(folder)[1:] == (namespace, name)]


def limits_of(proc: Proc) -> Optional[Limits]:
    """The limits the kernel holds for a process's service (None outside a service)."""
    return cgroups.limits_of(proc.cgroup) if proc.cgroup else None


def restart(namespace: str, name: str, grace: float = GRACE, timeout: float = 10.0,
            runner: Optional[Runner] = None) -> Service:
    """Stop a service and start it again as it was asked to be (its record, the kernel's
    limits), waiting for it as it was waited for."""
    check_service_name(name)
    lab = lab_of(namespace, runner)
    text = services.read_record(lab, namespace, name)
    if text is None:
        raise UsageError(f"no service {name} was started in {namespace}",
                         f"see the services: vethwrap ps {namespace}")
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    spec = ServiceSpec.from_json(data if isinstance(data, dict) else {})
    folder = cgroup_name(lab, namespace, name)
    if os.path.isdir(cgroups.path(folder)):
        spec = ServiceSpec(spec.name, spec.argv, spec.env, spec.wait_port, spec.wait_cmd,
                           cgroups.limits_of(folder))
        services.stop(members([folder]), grace, [folder])
    if spec.limits:
        cgroups.check_limits(spec.limits)
    return launch(namespace, lab, spec, timeout)


def open_log(namespace: str, name: str) -> tuple[str, BinaryIO]:
    """The log of service `name` in a namespace, open (the newest, if several labs had one).

    Every folder on the way and the file itself are opened without following links.
    """
    names.check_netns(namespace)
    check_service_name(name)
    found = []
    for lab in rundir.listdir([services.LOG_DIR]):
        fd = rundir.read_file([services.LOG_DIR, lab, namespace], f"{name}.log")
        if fd is not None:
            found.append((os.fstat(fd).st_mtime, lab, fd))
    if not found:
        raise UsageError(f"no log of a service {name} in {namespace}",
                         f"see the services: vethwrap ps {namespace}")
    found.sort()
    for _, _, fd in found[:-1]:
        os.close(fd)
    _, lab, fd = found[-1]
    return f"{services.LOG_ROOT}/{lab}/{namespace}/{name}.log", os.fdopen(fd, "rb")


def alive(namespace: str, name: str) -> bool:
    """True while a process of service `name` in the namespace runs."""
    return any(cgroups.populated(folder) for folder in service_groups(namespace, name))


def capture_argv(namespace: str, interface: str, path: Optional[str] = None,
                 count: Optional[int] = None, filter_expr: Optional[str] = None,
                 background: bool = False, runner: Optional[Runner] = None) -> list[str]:
    """The tcpdump command that captures on an interface inside a namespace."""
    require("tcpdump")
    if procs.netns_inode(names.check_netns(namespace)) is None:
        raise NoSuchNamespace(namespace)
    st = state.read([namespace], runner or default_runner(), routes=False).get(namespace)
    if st is None or interface not in st.links:
        have = ", ".join(sorted(st.links)) if st else "nothing"
        raise UsageError(f"{namespace} has no interface {interface!r}", f"it has: {have}")
    # -Z root: Debian's tcpdump otherwise opens the file as user tcpdump, after dropping root
    # --immediate-mode: each packet reaches tcpdump at once, not when libpcap's buffer times
    # out (1 s), so a capture stopped right after the traffic still holds it
    argv = ["tcpdump", "-n", "--immediate-mode", "-i", interface, "-Z", "root"]
    if path:
        argv += ["-U", "-w", path]  # -U: each packet reaches the file at once
    elif background:
        argv.append("-l")  # line-buffered, so the log fills as packets come
    if count:
        argv += ["-c", str(count)]
    # "--": the filter is the user's text, never an option (a filter of -w... writes a file)
    return argv + (["--", filter_expr] if filter_expr else [])


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
        spec = ServiceSpec(check_service_name(f"exec{i + 1}-{base}"[:64]), tuple(argv))
        # no wait to see it enter the namespace: `ip addr add` may be done before a look
        service = spawn(namespace, lab_of(namespace), spec)
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


def start_spec(lab: str, namespace: str, spec: ServiceSpec, timeout: float = 10.0
               ) -> Optional[Service]:
    """Start a lab file's service (None when one of that name already runs there)."""
    if alive(namespace, spec.name):
        return None
    if spec.limits:
        cgroups.check_limits(spec.limits)
    return launch(namespace, lab, spec, timeout)
