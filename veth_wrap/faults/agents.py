"""Fault services: a link that flaps, and the restore of a link's settings when time is up.

Each runs as a service of the lab (api.start), so destroy stops it with the lab and heal
finds it by its name. On SIGTERM (heal, destroy, `vethwrap stop`) it undoes its own fault at
once, without the lock: whoever sent the signal holds it and waits for the service to end.
"""

from __future__ import annotations

import itertools
import json
import signal
import sys
import threading
import time
from typing import Callable, Optional

from veth_wrap import api
from veth_wrap.errors import ConflictError, NoSuchNamespace, UsageError, VethwrapError
from veth_wrap.kernel import state
from veth_wrap.model import faults as model
from veth_wrap.model import names
from veth_wrap.model.linkopts import LinkOpts, link_opts
from veth_wrap.run.lock import locked
from veth_wrap.run.transaction import apply
from veth_wrap.steps import Kind, Op, Plan

Emit = Callable[[dict], None]  # one event, written as a JSON line to the service's log
IMPAIRMENTS = ("delay", "jitter", "loss", "rate")
READY_WITHIN = 30.0  # seconds a restore service may take to start Python on a loaded host


def agent_argv(*words: str) -> list[str]:
    """The command a fault service runs: this vethwrap's hidden fault-agent command."""
    return [sys.executable, "-m", "veth_wrap", "fault-agent", *words]


def until_stopped() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the agent's loops wait on it instead of sleeping."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def check_interface(namespace: str, ifname: str) -> None:
    """Refuse a namespace that does not exist or an interface it does not hold."""
    names.check_netns(namespace)
    names.check_ifname(ifname)
    found = state.read([namespace], routes=False) if namespace in state.list_netns() else {}
    if namespace not in found:
        raise NoSuchNamespace(namespace)
    if ifname not in found[namespace].links or ifname == "lo":
        have = ", ".join(sorted(n for n in found[namespace].links if n != "lo")) or "nothing"
        raise UsageError(f"{namespace} has no interface {ifname!r}", f"it has: {have}")


def _refuse_running(namespace: str, name: str) -> None:
    for proc in api.processes([namespace]):
        if proc.service == name:
            raise ConflictError(f"{name} already runs in {namespace} (pid {proc.pid})",
                                "end it first: vethwrap heal, or vethwrap stop "
                                f"{namespace} {name}")


def start_flap(namespace: str, ifname: str, down: str, up: str,
               count: Optional[int] = None) -> api.Service:
    """Start the service that flaps ifname: down for `down`, up for `up`, count times."""
    down_s, up_s = model.seconds(down, "--down"), model.seconds(up, "--up")
    if down_s <= 0 or up_s <= 0:
        raise UsageError("--down and --up must be longer than 0", "e.g. --down 2s --up 5s")
    check_interface(namespace, ifname)
    name = model.FLAP_PREFIX + ifname
    _refuse_running(namespace, name)
    words = [namespace, ifname, f"{down_s:g}", f"{up_s:g}", str(count or 0)]
    return api.start(namespace, agent_argv("flap", *words), name=name)


def set_link(namespace: str, ifname: str, up: bool) -> None:
    """One `ip link set` through the walker."""
    state_word, undo = ("up", "down") if up else ("down", "up")
    plan = Plan()
    plan.add([Op(Kind.SET_LINK, ("link", "set", "dev", ifname, state_word),
                  ("link", "set", "dev", ifname, undo), undo_netns=namespace, target=ifname)],
             netns=namespace)
    apply(plan)


def flap(namespace: str, ifname: str, down: float, up: float, count: int, emit: Emit) -> None:
    """Take the link down and up count times (0: until stopped); it is up when this ends."""
    stop = until_stopped()
    try:
        for number in (range(1, count + 1) if count else itertools.count(1)):
            set_link(namespace, ifname, False)
            emit({"event": "down", "flap": number, "namespace": namespace, "interface": ifname})
            if stop.wait(down):
                break
            set_link(namespace, ifname, True)
            emit({"event": "up", "flap": number, "namespace": namespace, "interface": ifname})
            if stop.wait(up):
                break
    finally:
        set_link(namespace, ifname, True)
        emit({"event": "stopped", "namespace": namespace, "interface": ifname})


def previous_opts(impairments: dict) -> Optional[LinkOpts]:
    """The impairments an end holds, as read back, as link options (None: none)."""
    return link_opts(**{key: impairments.get(key) for key in IMPAIRMENTS})


def start_timed(namespace: str, ifname: str, opts: LinkOpts, seconds: float) -> list[dict]:
    """Impair an end for `seconds`: the restore service starts first, then the change.

    The service holds the end's settings as they were, so a kill of this process after it
    started still ends the impairment on time.
    """
    if seconds <= 0:
        raise UsageError("--for must be longer than 0", "e.g. --for 30s")
    check_interface(namespace, ifname)
    name = model.RESTORE_PREFIX + ifname
    _refuse_running(namespace, name)
    held = api.describe(namespace, ifname)["impairments"]
    keep = {key: held[key] for key in IMPAIRMENTS if key in held}
    service = api.start(namespace, agent_argv("restore", namespace, ifname, f"{seconds:g}",
                                              json.dumps(keep)), name=name)
    try:
        # its SIGTERM handler is in place once it says so: a heal from then on restores
        service.wait_log('"event": "waiting"', timeout=READY_WITHIN)
        return api.link_set(namespace, ifname, opts, clear=False)
    except VethwrapError:
        service.stop()  # it restores what it holds: what the end held before
        raise


def restore(namespace: str, ifname: str, seconds: float, keep: dict, emit: Emit) -> None:
    """Wait `seconds` from now (or a stop), then put keep back on the end.

    The command that starts this service changes the end once it says it waits, so the
    time counts from about the change."""
    stop = until_stopped()
    until = time.time() + seconds
    emit({"event": "waiting", "namespace": namespace, "interface": ifname,
          "until": round(until, 3), "restores": keep})
    stopped = stop.wait(seconds)
    if stopped:  # heal or destroy holds the lock and waits for this service to end
        apply(api.link_plan(namespace, ifname, previous_opts(keep), True))
    else:
        with locked():
            apply(api.link_plan(namespace, ifname, previous_opts(keep), True))
    emit({"event": "restored", "namespace": namespace, "interface": ifname, "to": keep,
          "early": stopped})
