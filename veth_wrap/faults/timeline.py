"""Run a fault timeline as a service of the lab, each event logged as a JSON line."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence

from veth_wrap import api, lifecycle
from veth_wrap.errors import ConflictError, UsageError, VethwrapError
from veth_wrap.faults import agents
from veth_wrap.faults import partition as partitions
from veth_wrap.kernel import state
from veth_wrap.model import faults as model
from veth_wrap.model import names, timeline
from veth_wrap.model.linkopts import link_opts
from veth_wrap.model.timeline import Event
from veth_wrap.run import cgroups
from veth_wrap.run.runner import Runner, default_runner

Emit = Callable[[dict], None]


@dataclasses.dataclass
class Prepared:
    """A timeline checked against the lab: real names, interfaces, where its service runs."""

    lab: str
    events: list[Event]
    members: list[str]

    @property
    def home(self) -> str:
        """The namespace the timeline service runs in: the lab's first member."""
        return self.members[0]


def prepare(lab: Optional[str], events: Sequence[Event],
            runner: Optional[Runner] = None) -> Prepared:
    """Resolve the events' names in lab (short names too) and fill in default interfaces;
    refuse what does not fit the lab before anything starts."""
    runner = runner or default_runner()
    lab = lab or _lab_from_events(events, runner)
    members, ends = _members(lab, runner)
    existing = state.list_netns(runner)
    return Prepared(lab, [_resolved(e, lab, existing, ends) for e in events], members)


def _members(lab: str, runner: Runner) -> tuple[list[str], dict[str, list[str]]]:
    """A lab's members (its hub left out) and each one's vethwrap interfaces."""
    members = [ns for ns in partitions.lab_namespaces(names.check_lab(lab), runner)
               if ns != names.hub_netns(lab)]
    facts = state.read(members, runner, routes=False)
    return members, {ns: sorted(link.ifname for link in st.marked())
                     for ns, st in facts.items()}


def drawn(seed: int, lab: str, seconds: float, runner: Optional[Runner] = None) -> list[Event]:
    """A random timeline of seconds for lab's members and their first links, from seed."""
    members, ends = _members(lab, runner or default_runner())
    links = {ns: found[0] for ns, found in ends.items() if found}
    return timeline.drawn(seed, members, links, timeline.Bounds(duration=seconds))


def _lab_from_events(events: Sequence[Event], runner: Runner) -> str:
    named = [n for e in events for g in e.groups for n in g] + [
        e.details["namespace"] for e in events if e.details]
    if not named:
        raise UsageError("the timeline names no namespace, so no lab", "give --lab NAME")
    return lifecycle.lab_of(names.check_netns(named[0]), runner)


def _resolved(event: Event, lab: str, existing: list[str], ends: dict) -> Event:
    def real(name: str) -> str:
        found = partitions.resolve(names.check_netns(name), lab, existing)
        if found not in ends:
            raise UsageError(f"{found} is not a namespace of lab {lab}",
                             f"see its members: vethwrap show --lab {lab}")
        return found

    if event.groups:
        groups = tuple(tuple(real(n) for n in g) for g in event.groups)
        model.check_groups(groups)
        return dataclasses.replace(event, groups=groups)
    if not event.details:
        return event
    details = dict(event.details, namespace=real(event.details["namespace"]))
    ifname = details.setdefault("interface", (ends[details["namespace"]] or [""])[0])
    if ifname not in ends[details["namespace"]]:
        raise UsageError(f"{details['namespace']} has no vethwrap interface {ifname!r}",
                         f"it has: {', '.join(ends[details['namespace']]) or 'none'}")
    if event.action == "impair":
        _opts(details)  # refused now, not when the event comes
    return dataclasses.replace(event, details=details)


def _opts(details: dict):
    opts = link_opts(*(details.get(k) for k in ("delay", "jitter", "loss", "rate")))
    if opts is None:
        raise UsageError("an impair event changes nothing", "give loss:, delay: or rate:")
    return opts


def start(prepared: Prepared) -> api.Service:
    """Start the timeline service in the lab's first member (one timeline a lab)."""
    import json

    for proc in partitions.fault_services([prepared.home], prepared.lab):
        if proc.service == model.TIMELINE:
            raise ConflictError(f"a timeline already runs in lab {prepared.lab} (pid "
                                    f"{proc.pid})", f"end it: vethwrap heal --lab {prepared.lab}")
    payload = json.dumps([e.to_json() for e in prepared.events], separators=(",", ":"))
    return api.start(prepared.home, agents.agent_argv("timeline", prepared.lab, payload),
                     name=model.TIMELINE)


def run(lab: str, events: Sequence[Event], emit: Emit) -> None:
    """Each event at its time after the start; a failed one is logged and the rest go on."""
    cgroups.see_hierarchy()  # a service itself: the services it starts need the hierarchy
    stop = agents.until_stopped()
    start = time.monotonic()
    emit({"event": "start", "lab": lab, "events": len(events)})
    for event in events:
        if stop.wait(max(start + event.at - time.monotonic(), 0)):
            emit({"event": "stopped", "lab": lab})
            return
        began, wall = time.monotonic(), round(time.time(), 3)  # the log line comes after
        shown = {k: v for k, v in event.to_json().items() if k != "action"}
        shown["began"] = wall
        try:
            said = _do(lab, event)
        except VethwrapError as error:
            emit({"event": event.action, **shown, "ok": False, "error": error.line()})
            continue
        took = round(time.monotonic() - began, 3)
        emit({"event": event.action, **shown, "ok": True, "took": took, **said})
    emit({"event": "done", "lab": lab})


def _do(lab: str, event: Event) -> dict:
    """Carry out one event; what it says beyond the event itself."""
    if event.action == "partition":
        partitions.partition(event.groups, lab, event.oneway)
        return {}
    if event.action == "heal":
        healed = partitions.heal(lab, keep=[model.TIMELINE])
        return {"removed": len(healed.tables), "stopped": len(healed.stopped)}
    details = event.details
    ns, ifname = details["namespace"], details["interface"]
    if event.action == "flap":
        count = int(details["count"]) if details.get("count") else None
        service = agents.start_flap(ns, ifname, details.get("down", "1s"),
                                    details.get("up", "1s"), count)
        return {"service": service.name, "pid": service.pid}
    agents.start_timed(ns, ifname, _opts(details), model.seconds(details["for"]))
    return {}
