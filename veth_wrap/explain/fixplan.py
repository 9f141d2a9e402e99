"""`diagnose --fix`: the printed fixes as a plan (argv and undo), applied, probed, kept or undone.

Each fix's undo comes from the state the diagnosis read (the old sysctl value, the blackhole
route's type and table, the rule's selectors, the neighbour's old MAC, the port's old state),
so that a fix that does not heal is taken back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from veth_wrap.errors import UsageError, VethwrapError
from veth_wrap.explain.fixes import Fix, shell_line
from veth_wrap.steps import Kind, Op, Plan, Step

ROUNDS = 3  # a cause hidden behind another (a firewall behind a blackhole) shows once it goes


@dataclass
class Healing:
    """What --fix did: the commands applied, and whether the round trip works now."""

    healed: bool
    applied: list[str] = field(default_factory=list)
    rolled_back: bool = False
    after: object = None  # the diagnosis after the fixes

    def to_json(self) -> dict:
        """Plain JSON-ready values."""
        return {"healed": self.healed, "applied": list(self.applied),
                "rolled_back": self.rolled_back}


def inverse(fix: Fix, diag) -> Fix | None:
    """How to undo one fix, from the finding that made it or from the state read."""
    for cause in diag.causes:
        if tuple(fix) in cause.undo:
            return cause.undo[tuple(fix)]
    words = list(fix)
    head, rest = _split(words)
    if rest[:3] == ["link", "set", "dev"] and rest[4:] == ["up"]:
        return head + rest[:4] + ["down"]
    if rest[:3] == ["link", "set", "dev"] and rest[4:5] == ["master"]:
        return head + rest[:4] + ["nomaster"]
    if rest[:2] == ["addr", "add"]:
        return head + ["addr", "del", *rest[2:]]
    if rest[:2] == ["route", "add"]:
        return head + ["route", "del", *rest[2:]]
    if rest[:2] == ["route", "change"]:
        return _route_back(head, rest, diag)
    if words[:3] == ["ip", "netns", "exec"] and words[4:6] == ["sysctl", "-w"]:
        old = diag.nets.sysctls.get(words[3], {}) if diag.nets else {}
        keys = [w.split("=", 1)[0] for w in words[6:]]
        if all(old.get(k, "") != "" for k in keys):
            return words[:6] + [f"{k}={old[k]}" for k in keys]
    return None


def _split(words: list[str]) -> tuple[list[str], list[str]]:
    if words[:2] == ["ip", "-n"]:
        return words[:3], words[3:]
    return words[:1], words[1:]


def _route_back(head: list[str], rest: list[str], diag) -> Fix | None:
    ns = head[2] if len(head) > 2 else None
    dst = rest[2]
    for route in (diag.nets.routes.get(ns, []) if diag.nets else []):
        if route.get("dst") == dst and route.get("type", "unicast") == "unicast":
            via = ["via", route["gateway"]] if route.get("gateway") else []
            metric = ["metric", str(route["metric"])] if route.get("metric") else []
            return head + ["route", "change", dst, *via, "dev", route["dev"], *metric]
    return None


def plan(diag) -> Plan:
    """The diagnosis' fixes as a plan; refused when a fix has no known undo."""
    result = Plan()
    for fix in diag.fixes:
        undo = inverse(fix, diag)
        if undo is None:
            raise UsageError(f"cannot tell how to undo '{shell_line(fix)}' if it does not heal "
                             "the path, so --fix changes nothing",
                             "paste the printed fix by hand if it is what you want")
        result.steps.append(_step(fix, undo))
    return result


def _step(fix: Fix, undo: Fix) -> Step:
    """One fix as a step: `PROGRAM [-n NS] WORDS`, its undo as the words after `ip`."""
    program, netns, args = fix[0], None, fix[1:]
    if fix[1:2] == ["-n"]:
        netns, args = fix[2], fix[3:]
    undo_netns, words = None, ()
    if undo:
        if undo[0] == "ip" and undo[1:2] == ["-n"]:
            undo_netns, words = undo[2], tuple(undo[3:])
        elif undo[0] == "ip":
            words = tuple(undo[1:])
        elif undo[1:2] == ["-n"]:
            words = ("netns", "exec", undo[2], undo[0], *undo[3:])
        else:
            words = ("netns", "exec", netns or "", *undo) if netns else tuple(undo)
    return Step((Op(Kind.FIX, tuple(args), undo=words, undo_netns=undo_netns),), netns, program,
                comment=f"undo: {shell_line(undo)}" if undo else "")


def heal(diag, rediagnose, runner=None) -> Healing:
    """Apply the fixes under the lock; keep them only if the round trip then works."""
    from veth_wrap.run.commands import script
    from veth_wrap.run.lock import locked
    from veth_wrap.run.transaction import apply, rollback

    done: list[Op] = []
    applied: list[str] = []
    current = diag
    patient = True  # one more look after the last fix, before anything is undone
    with locked():
        for _ in range(ROUNDS + 1):
            steps = plan(current)
            if steps.empty and patient and done:  # nothing more to fix: give it one more look
                patient, current = False, rediagnose()  # (a busy host resolves slowly)
                if current.reachable:
                    return Healing(True, applied, after=current)
                continue
            if steps.empty:
                break
            try:
                outcome = apply(steps, runner)  # a failing step rolls its own plan back
            except VethwrapError:
                rollback(done, runner)
                raise
            done += outcome.done
            applied += [line for line in script(steps) if line[0] != "#"]
            current = rediagnose()
            if current.reachable:
                return Healing(True, applied, after=current)
        rollback(done, runner)
    return Healing(False, applied, rolled_back=bool(done), after=current)
