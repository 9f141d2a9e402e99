"""Fault timelines: timed partition, heal, flap and impair events, read from YAML or drawn at
random from a seed. Pure data: faults/timeline.py runs them.

A timeline file is a list of events (or a mapping with `events:`), each with `at:` and one
action:

    - {at: 5s, partition: [[a, b], [c]]}     # or "a,b c"; oneway: true for one way
    - {at: 20s, heal: true}
    - {at: 25s, flap: {namespace: a, down: 1s, up: 2s, count: 2}}   # interface: optional
    - {at: 30s, impair: {namespace: b, loss: 20%, for: 10s}}       # delay, rate where netem is
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from veth_wrap.errors import UsageError
from veth_wrap.model.faults import seconds

ACTIONS = ("partition", "heal", "flap", "impair")
MAX_EVENTS = 500  # the service gets the timeline as one argument (at most 128 KiB)
_FLAP_KEYS = {"namespace", "interface", "down", "up", "count"}
_IMPAIR_KEYS = {"namespace", "interface", "delay", "jitter", "loss", "rate", "for"}


@dataclass(frozen=True)
class Event:
    """One timed fault: seconds after the timeline starts, what, and its details."""

    at: float
    action: str
    groups: tuple[tuple[str, ...], ...] = ()
    oneway: bool = False
    details: dict = field(default_factory=dict, hash=False)  # flap's or impair's keys

    def to_json(self) -> dict:
        """The event as JSON (also how the timeline service receives it)."""
        found: dict[str, Any] = {"at": self.at, "action": self.action}
        if self.groups:
            found["groups"] = [list(g) for g in self.groups]
            found["oneway"] = self.oneway
        if self.details:
            found["details"] = dict(self.details)
        return found

    @staticmethod
    def from_json(data: dict) -> Event:
        """The inverse of to_json."""
        return Event(float(data["at"]), data["action"],
                     tuple(tuple(g) for g in data.get("groups", ())),
                     bool(data.get("oneway")), dict(data.get("details", {})))


def parse(data: Any) -> list[Event]:
    """Events from a timeline file's data, in time order; refuse anything unclear.

    The data is a list of events, or {lab: NAME, events: [...]} (lab_of reads the name)."""
    if isinstance(data, dict) and set(data) <= {"events", "lab"} and "events" in data:
        data = data["events"]
    if not isinstance(data, list) or not data:
        raise UsageError("a timeline is a list of events", "e.g. - {at: 5s, heal: true}")
    if len(data) > MAX_EVENTS:
        raise UsageError(f"a timeline of {len(data)} events", f"give at most {MAX_EVENTS}")
    events = [_event(item, number) for number, item in enumerate(data, 1)]
    return sorted(events, key=lambda e: e.at)


def _event(item: Any, number: int) -> Event:
    where = f"event {number}"
    if not isinstance(item, dict) or "at" not in item:
        raise UsageError(f"{where} has no 'at:'", "write it like {at: 5s, heal: true}")
    actions = [key for key in item if key in ACTIONS]
    unknown = sorted(set(item) - set(ACTIONS) - {"at", "oneway"})
    if len(actions) != 1 or unknown:
        raise UsageError(f"{where} must have one of {', '.join(ACTIONS)}" +
                         (f", not {unknown[0]!r}" if unknown else ""),
                         "e.g. {at: 20s, heal: true}")
    at = seconds(item["at"], f"{where}: at")
    action, value = actions[0], item[actions[0]]
    if action == "heal":
        return Event(at, action)
    if action == "partition":
        return Event(at, action, _groups(value, where), bool(item.get("oneway", False)))
    return Event(at, action, details=_details(value, action, where))


def _groups(value: Any, where: str) -> tuple[tuple[str, ...], ...]:
    if isinstance(value, str):
        value = [word.split(",") for word in value.split()]
    if not isinstance(value, list) or not all(isinstance(g, list) for g in value):
        raise UsageError(f"{where}: partition takes groups", 'write [[a, b], [c]] or "a,b c"')
    return tuple(tuple(str(name).strip() for name in group) for group in value)


def _details(value: Any, action: str, where: str) -> dict:
    allowed = _FLAP_KEYS if action == "flap" else _IMPAIR_KEYS
    if not isinstance(value, dict) or "namespace" not in value:
        raise UsageError(f"{where}: {action} takes a mapping with namespace:",
                         f"e.g. {{namespace: a, {'down: 1s' if action == 'flap' else 'loss: 5%'}}}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise UsageError(f"{where}: {action} has no key {unknown[0]!r}",
                         f"it takes {', '.join(sorted(allowed))}")
    details = {key: str(item) for key, item in value.items()}
    if action == "impair" and "for" not in details:
        raise UsageError(f"{where}: impair needs for:", "e.g. {namespace: a, loss: 5%, for: 10s}")
    for key in ("down", "up", "for"):
        if key in details:
            seconds(details[key], f"{where}: {key}")
    return details


@dataclass(frozen=True)
class Bounds:
    """What a random timeline may draw: its length and each fault's span, in seconds."""

    duration: float = 60.0
    gap: tuple[float, float] = (2.0, 8.0)  # between one fault's end and the next's start
    hold: tuple[float, float] = (3.0, 10.0)  # how long a partition or impairment lasts
    flap: tuple[float, float] = (0.5, 3.0)  # a flap's down and up times


def drawn(seed: int, members: Sequence[str], links: dict[str, str],
          bounds: Optional[Bounds] = None) -> list[Event]:
    """A random timeline from seed: partitions (random groups) healed after a random hold,
    and flaps of random members' links (links: {namespace: interface}); the same seed and
    lab give the same timeline."""
    if len(members) < 2:
        raise UsageError("a random timeline needs a lab of two namespaces or more",
                         "build a bigger lab")
    bounds = bounds or Bounds()
    rng = random.Random(seed)
    events: list[Event] = []
    now = rng.uniform(*bounds.gap)
    while now < bounds.duration:
        hold = rng.uniform(*bounds.hold)
        if rng.random() < 0.6 or not links:
            events += _random_partition(rng, members, now, hold)
        else:
            events.append(_random_flap(rng, links, now, hold, bounds))
        now += hold + rng.uniform(*bounds.gap)
    return events


def _random_partition(rng: random.Random, members: Sequence[str], at: float,
                      hold: float) -> list[Event]:
    shuffled = list(members)
    rng.shuffle(shuffled)
    cut = rng.randint(1, len(shuffled) - 1)
    groups = (tuple(sorted(shuffled[:cut])), tuple(sorted(shuffled[cut:])))
    return [Event(round(at, 3), "partition", groups, rng.random() < 0.25),
            Event(round(at + hold, 3), "heal")]


def _random_flap(rng: random.Random, links: dict[str, str], at: float, hold: float,
                 bounds: Bounds) -> Event:
    namespace = rng.choice(sorted(links))
    down, up = rng.uniform(*bounds.flap), rng.uniform(*bounds.flap)
    count = max(1, int(hold // (down + up)))
    return Event(round(at, 3), "flap", details={
        "namespace": namespace, "interface": links[namespace], "down": f"{down:.2f}s",
        "up": f"{up:.2f}s", "count": str(count)})


def load(path: str) -> tuple[list[Event], Optional[str]]:
    """(events, the lab it names) from a timeline file, read with the lab files' bounds."""
    from veth_wrap.model import safeyaml

    try:
        data = safeyaml.compose(safeyaml.read_text(path)).data
    except safeyaml.Refused as exc:  # its `line` is a number: say it as a plain refusal
        where = f"{path}:{exc.line}" if exc.line else path
        raise UsageError(f"timeline {where}: {exc.message}",
                         exc.hint.replace("lab file", "timeline file")) from None
    return parse(data), lab_of(data)


def lab_of(data: Any) -> Optional[str]:
    """The lab a timeline file names with `lab:`, if it does."""
    if isinstance(data, dict) and isinstance(data.get("lab"), str):
        return data["lab"]
    return None
