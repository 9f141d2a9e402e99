"""CLI commands for software in a lab: run, ps, stop, logs and capture."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.errors import ServiceFailed, UsageError

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
GRACE = typer.Option(2.0, "--grace", min=0, max=3600,
                     help="Seconds between SIGTERM and SIGKILL.")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")
FOLLOW_POLL = 0.2  # seconds between reads of a followed log


def register(app: typer.Typer) -> None:
    """Attach run, ps, stop, restart, logs and capture."""
    app.command("run", context_settings=PASS_THROUGH)(run_command)
    app.command()(ps)
    app.command()(stop)
    app.command()(restart)
    app.command()(logs)
    app.command()(capture)


def _command(ctx: typer.Context, namespace: str) -> list[str]:
    argv = list(ctx.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise UsageError("no command given", f"e.g. vethwrap run {namespace} -- sleep 600")
    return argv


def _env(pairs: List[str]) -> dict[str, str]:
    from veth_wrap.model.servicespec import check_env

    found = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or "\0" in pair:
            raise UsageError(f"--env {pair!r} is not KEY=VALUE", "e.g. --env PORT=8080")
        found[key] = value
    return check_env(found)


def _limits(memory: Optional[str], cpus: Optional[float]):
    from veth_wrap.model.servicespec import Limits, check_cpus, parse_memory

    return Limits(parse_memory(memory) if memory is not None else None,
                  check_cpus(cpus) if cpus is not None else None)


def _wait_cmd(text: Optional[str]) -> list[str]:
    import shlex

    if text is None:
        return []
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--wait-cmd {text!r}: {exc}", "quote it as a shell would") from None
    if not argv:
        raise UsageError("--wait-cmd is empty", "e.g. --wait-cmd 'redis-cli ping'")
    return argv


@guarded
def run_command(
    ctx: typer.Context,
    namespace: str = typer.Argument(..., help="Namespace of a lab to run the command in."),
    name: Optional[str] = typer.Option(None, "--name", help="Service name (default: program)."),
    wait_port: Optional[str] = typer.Option(
        None, "--wait-port", help="Return once the service itself listens on this port: "
        "80 (TCP) or 53/udp."),
    wait_cmd: Optional[str] = typer.Option(
        None, "--wait-cmd", help="Return once this command, run inside, exits 0 "
        "(e.g. 'redis-cli ping')."),
    wait_timeout: float = typer.Option(10.0, "--wait-timeout", min=0.1, max=3600,
                                       help="Seconds --wait-port/--wait-cmd wait."),
    env: List[str] = typer.Option(None, "--env", help="KEY=VALUE for the command; repeatable."),
    memory: Optional[str] = typer.Option(None, "--memory",
                                         help="Memory limit, e.g. 64M (needs cgroup v2's "
                                         "memory controller)."),
    cpus: Optional[float] = typer.Option(None, "--cpus", help="CPU limit, e.g. 0.5 (needs "
                                         "cgroup v2's cpu controller)."),
    json_out: bool = JSON,
) -> None:
    """Start a command in the background inside a namespace: a service with a log."""
    from veth_wrap import api
    from veth_wrap.model.servicespec import parse_wait_port

    argv = _command(ctx, namespace)
    extra = _env(env)
    port = parse_wait_port(wait_port) if wait_port is not None else None
    probe = _wait_cmd(wait_cmd)
    limits = _limits(memory, cpus)
    require_root()
    try:
        service = api.start(namespace, argv, name, extra, port, wait_timeout, wait_cmd=probe,
                            limits=limits)
    except ServiceFailed as failure:
        print_tail(failure)
        raise
    _print_started(service, json_out)


def _print_started(service, json_out: bool) -> None:
    from veth_wrap.cli.output import emit_json, out

    port = service.spec.wait_port if service.spec else None
    if json_out:
        emit_json(dict(service.to_json(), port=port.port if port else None,
                       proto=port.proto if port else None))
        return
    listening = f", listening on port {port}" if port else ""
    out().print(f"{service.name} runs in {service.namespace}: pid {service.pid}{listening}, "
                f"log {service.log}", markup=False, highlight=False, soft_wrap=True)


@guarded
def restart(
    namespace: str = typer.Argument(..., help="Namespace the service runs in."),
    name: str = typer.Argument(..., help="The service's name."),
    grace: float = GRACE,
    wait_timeout: float = typer.Option(10.0, "--wait-timeout", min=0.1, max=3600,
                                       help="Seconds its --wait-port/--wait-cmd wait."),
    json_out: bool = JSON,
) -> None:
    """Stop a service and start it again: same command, environment, limits and waits."""
    from veth_wrap import api

    require_root()
    try:
        service = api.restart(namespace, name, grace, wait_timeout)
    except ServiceFailed as failure:
        print_tail(failure)
        raise
    _print_started(service, json_out)


def print_tail(failure: ServiceFailed) -> None:
    """A failed service's last log lines, on stderr."""
    from veth_wrap.cli.output import say

    if failure.log_tail:
        say(f"last {len(failure.log_tail)} line(s) of its log:")
        for line in failure.log_tail:
            say(f"  | {line}")
    else:
        say("its log is empty")


def start_file_services(lab) -> list[dict]:
    """Start the file's services in order; one already running is left as it is. Returns
    what each one is now, for --json."""
    from veth_wrap import api
    from veth_wrap.cli.output import say
    from veth_wrap.model import labservices

    found = []
    for netns, spec in labservices.of_lab(lab):
        try:
            service = api.start_spec(lab.name, netns, spec)
        except ServiceFailed as failure:
            print_tail(failure)
            raise
        found.append({"namespace": netns, "name": spec.name, "started": service is not None})
        if service is None:
            say(f"{spec.name} already runs in {netns}; left as it is")
        else:
            found[-1].update(pid=service.pid, log=service.log)
            port = f", listening on port {spec.wait_port}" if spec.wait_port else ""
            say(f"{spec.name} runs in {netns}: pid {service.pid}{port}")
    return found


@guarded
def ps(
    namespaces: List[str] = typer.Argument(None, help="Only these namespaces (default: all)."),
    lab: Optional[str] = typer.Option(None, "--lab", help="Only the namespaces of one lab."),
    json_out: bool = JSON,
) -> None:
    """List every process running in vethwrap's namespaces, started by `run` or not."""
    from veth_wrap import api
    from veth_wrap.cli.output import emit_json, out, say, table
    from veth_wrap.kernel import procs
    from veth_wrap.model import names

    if lab is not None:
        names.check_lab(lab)
    require_root()
    found = api.processes(namespaces or [], lab)
    now = procs.uptime()
    if json_out:
        emit_json({"processes": [dict(_proc_json(p, now), limits=_limits_json(p))
                                 for p in found]})
        return
    if not found:
        say("no process runs in vethwrap's namespaces" if not namespaces and not lab
            else "no process runs there")
        return
    tbl = table(None, ["namespace", "pid", "service", "command", "uptime"])
    for proc in found:
        tbl.add_row(proc.netns, str(proc.pid), proc.service or "-", proc.command(),
                    _age(now - proc.started))
    out().print(tbl)


def _proc_json(proc, now: float) -> dict:
    unnamed = proc.netns.startswith("(") if proc.netns else True
    return {"namespace": None if unnamed else proc.netns, "pid": proc.pid,
            "name": proc.service, "lab": proc.lab, "command": list(proc.argv),
            "uptime_s": round(now - proc.started, 2)}


def _limits_json(proc) -> Optional[dict]:
    from veth_wrap import api

    limits = api.limits_of(proc)
    return limits.to_json() if limits is not None else None


def _age(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@guarded
def stop(
    namespace: str = typer.Argument(..., help="Namespace the process runs in."),
    target: str = typer.Argument(..., help="A service name, or a PID."),
    grace: float = GRACE,
    json_out: bool = JSON,
) -> None:
    """Stop a service (every process of its cgroup) or a process: SIGTERM, then SIGKILL."""
    from veth_wrap import api
    from veth_wrap.cli.output import emit_json, out

    require_root()
    done = api.stop(namespace, target, grace)
    if json_out:
        emit_json({"stopped": [item.to_json() for item in done]})
        return
    for item in done:
        out().print(item.line(namespace),
                    markup=False, highlight=False, soft_wrap=True)


@guarded
def logs(
    namespace: str = typer.Argument(..., help="Namespace the service runs in."),
    name: str = typer.Argument(..., help="The service's name."),
    follow: bool = typer.Option(False, "--follow", "-f",
                                help="Keep printing new lines until the service ends."),
) -> None:
    """Print a service's log (its stdout and stderr)."""
    from veth_wrap import api

    require_root()
    _, log = api.open_log(namespace, name)
    with log:
        _copy(log)
        if follow:
            try:
                _follow(log, namespace, name)
            except KeyboardInterrupt:
                pass


def _copy(log) -> int:
    data = log.read()
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return len(data)


def _follow(log, namespace: str, name: str) -> None:
    """New lines as they come; ends when no process of the service is left and all is read."""
    import time

    from veth_wrap import api

    while True:
        if _copy(log):
            continue
        if not api.alive(namespace, name) and not _copy(log):
            return
        time.sleep(FOLLOW_POLL)


@guarded
def capture(
    namespace: str = typer.Argument(..., help="Namespace to capture in."),
    interface: str = typer.Argument(..., help="Interface inside it, e.g. vw-ns1."),
    write: Optional[str] = typer.Option(None, "-w", "--write", help="Write a pcap file here."),
    count: Optional[int] = typer.Option(None, "--count", "-c", min=1,
                                        help="Stop after this many packets."),
    filter_expr: Optional[str] = typer.Option(None, "--filter",
                                              help="A tcpdump filter, e.g. 'icmp or arp'."),
    background: bool = typer.Option(False, "--background",
                                    help="Run as a service (stopped by destroy)."),
    name: Optional[str] = typer.Option(None, "--name", help="Service name with --background."),
    json_out: bool = JSON,
) -> None:
    """Watch traffic with tcpdump inside a namespace: decoded lines, or a pcap file."""
    import os

    from veth_wrap import api
    from veth_wrap.cli.output import emit_json, out
    from veth_wrap.model import names

    names.check_netns(namespace)
    names.check_ifname(interface)
    require_root()
    path = os.path.abspath(write) if write else None
    argv = api.capture_argv(namespace, interface, path, count, filter_expr, background)
    if not background:
        api.exec_in(namespace, argv)
        return
    try:
        service = api.start(namespace, argv, name or f"capture-{interface}")
        service.wait_log("listening on")
    except ServiceFailed as failure:
        print_tail(failure)
        raise
    if json_out:
        emit_json(dict(service.to_json(), file=path))
        return
    where = f"to {path}" if path else "decoded into the log"
    out().print(f"{service.name} captures {namespace}:{interface} {where}: pid {service.pid}, "
                f"log {service.log}", markup=False, highlight=False, soft_wrap=True)
