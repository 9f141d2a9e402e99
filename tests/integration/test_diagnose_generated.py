"""Generated broken labs: random small labs, one or two random breakages over the kernel's knobs,
and the rule every diagnosis keeps: its fix heals both directions and touches only namespaces
on the path, or it prints no fix.

Hypothesis draws the breakages (seeded, bounded, no shrinking: each example costs real
namespaces); every example breaks each lab of a pool of labs at once, in threads. A lab is
restored after each breakage (undone, compared with its fingerprint, rebuilt if it differs).
A wrong fix fails the test with the commands that reproduce it.
VETHWRAP_GEN_BREAKAGES sets how many breakages (default 150), VETHWRAP_GEN_SEED the seed,
VETHWRAP_GEN_REPORT a file for the figures (JSON).
"""

from __future__ import annotations

import json
import os
import random
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import genbreak
import genlabs
import pytest
from conftest import Namespaces
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("VETHWRAP_GEN_SEED", "23"))
WANTED = int(os.environ.get("VETHWRAP_GEN_BREAKAGES", "150"))
WORKERS = int(os.environ.get("VETHWRAP_GEN_WORKERS", "10"))  # mostly waiting for pings
ROUNDS = 3  # as `diagnose --fix`: a cause hidden behind another shows once the first is fixed
# (topology, IP version, built by hand, subnet)
LABS = [("pair", 4, False, "10.61.0.0/24"), ("pair", 6, False, "10.62.0.0/24"),
        ("bridge", 4, False, "10.63.0.0/24"), ("bridge", 6, False, "10.64.0.0/24"),
        ("chain", 4, False, "10.65.0.0/16"), ("chain", 6, False, "10.66.0.0/16"),
        ("pair", 4, True, "10.0.0.0/24"), ("bridge", 4, True, "10.0.0.0/24"),
        ("chain", 4, True, "10.70.0.0/16"), ("chain", 6, True, "fd00:71::/48")]
SPACES = {"pair": 2, "bridge": 3, "chain": 3}
COUNTED = ("healed", "partial", "named", "unknown", "wrong")  # breakages that broke the ping

# hypothesis draws one number an example; the breakages of every lab come from it (drawn
# structures of its own repeat the same kinds and numbers too often to cover the knobs)
EXAMPLE = st.integers(0, 2**63)


def breakages(number: int) -> list[list[tuple[str, list[int]]]]:
    """One or two breakages for each lab of the pool: a kind and the numbers that pick."""
    draw = random.Random(number)
    return [[(draw.choice(sorted(genbreak.KINDS)), [draw.randrange(10**6) for _ in range(8)])
             for _ in range(draw.choice((1, 2)))] for _ in LABS]


@dataclass
class Outcome:
    """One breakage of one lab, and what diagnose made of it."""

    lab: str
    kinds: list[str]
    verdict: str  # healed, partial, named, unknown, wrong, harmless, not-applicable
    cause: str = ""
    repro: list[str] = field(default_factory=list)
    why: str = ""
    seconds: float = 0.0


class Slot:
    """One lab of the pool, built on first use and rebuilt whenever it cannot be restored."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.kind, self.family, self.hand, self.subnet = LABS[index]
        self.spaces = Namespaces(f"g{index}")
        self.lab: genlabs.Lab | None = None
        self.rebuilds = 0  # labs built again because a breakage could not be undone

    @property
    def label(self) -> str:
        return f"{self.kind}{self.family}{'-by-hand' if self.hand else ''}"

    def ready(self) -> genlabs.Lab:
        if self.lab is None:
            names = [self.spaces.name(x) for x in "abc"[:SPACES[self.kind]]]
            self.lab = genlabs.build(names, self.kind, self.family, self.hand, self.subnet)
            if not genlabs.both_ways(self.lab, 3):
                raise RuntimeError(f"{self.label}: a fresh lab does not ping")
        return self.lab

    def rebuild(self) -> None:
        self.rebuilds += 1
        if self.lab is not None:
            if not self.hand:
                genlabs.cli("destroy", "-q", *self.lab.spaces)
            genlabs.destroy(self.lab)
        self.lab = None

    def cleanup(self) -> None:
        self.rebuild()
        self.spaces.cleanup()


def _namespaces_of(line: str) -> list[str | None]:
    """The namespaces a fix line acts in (None: the root namespace)."""
    words = shlex.split(line)
    if words[:3] == ["ip", "netns", "exec"]:
        return [words[3]]
    if len(words) > 2 and words[1] == "-n":
        moved = [words[words.index("netns") + 1]] if "netns" in words[3:] else []
        return [words[2], *moved]
    return [None]


def _apply_lines(lines: list[str]) -> list[str]:
    return genbreak.apply([shlex.split(line) for line in lines])


def _diagnose(lab: genlabs.Lab) -> dict:
    done = genlabs.cli("diagnose", lab.src, lab.dest, "--json")
    if done.returncode not in (0, 1):
        raise AssertionError(f"diagnose exited {done.returncode}: {done.stderr}")
    return json.loads(done.stdout)


def judge(lab: genlabs.Lab, changes: list[genbreak.Change], repro: list[str]) -> Outcome:
    """Diagnose the broken lab; apply its fixes (up to ROUNDS); say how it went.

    A fix must heal both ways. With two breakages, a fix that removes the cause it names
    (the next diagnosis names another) while the other breakage stays unexplained is partial."""
    allowed = set(lab.path) | {ns for c in changes for ns in c.made}
    kinds = [c.kind for c in changes]
    named: list[tuple] = []
    for _ in range(ROUNDS):
        data = _diagnose(lab)
        repro.append(f"vethwrap diagnose {lab.src} {lab.dest} --json   # {data['cause']}")
        causes = [(c["cause"], c["namespace"], c["direction"]) for c in data["causes"]
                  if c["fix"]]
        if named and data["reachable"] and genlabs.both_ways(lab):  # it took a while
            return Outcome(lab.name, kinds, "healed", named[0][0], repro)
        if named and (data["reachable"] or set(causes) & set(named)):
            why = "healed one way only" if data["reachable"] else \
                f"the fix did not remove its cause: {data['summary']}"
            return Outcome(lab.name, kinds, "wrong", data["cause"], repro, why)
        script = data["fix_script"]
        if not script:
            verdict = "partial" if named and len(changes) > 1 else "wrong" if named else \
                "unknown" if data["cause"] == "unknown" else "named"
            return Outcome(lab.name, kinds, verdict, data["cause"], repro,
                           f"then: {data['summary']}" if named else "")
        named += causes
        repro += script
        off = [ns for line in script for ns in _namespaces_of(line) if ns not in allowed]
        if off:
            return Outcome(lab.name, kinds, "wrong", data["cause"], repro,
                           f"the fix acts off the path, in {off}")
        errors = _apply_lines(script)
        if errors:
            return Outcome(lab.name, kinds, "wrong", data["cause"], repro,
                           f"the fix fails: {errors[0]}")
        if genlabs.both_ways(lab):
            return Outcome(lab.name, kinds, "healed", data["cause"], repro)
    return Outcome(lab.name, kinds, "wrong", named[0][0], repro,
                   "the fixes do not heal both directions")


def attempt(slot: Slot, breakages: list[tuple[str, list[int]]]) -> Outcome:
    """Break one lab, judge the diagnosis, restore the lab."""
    lab = slot.ready()
    changes = [genbreak.resolve(lab, kind, numbers, slot.spaces.name("m"))
               for kind, numbers in breakages]
    changes = [c for c in changes if c.cmds]
    repro = list(lab.built_by)
    try:
        for change in changes:
            repro += [genbreak.shell(c) for c in change.cmds]
            errors = genbreak.apply(change.cmds)
            if errors:
                return Outcome(lab.name, [c.kind for c in changes], "not-applicable",
                               why=errors[0])
        if not changes or genlabs.ping(lab.src, lab.dest, wait="0.5"):  # what is diagnosed
            return Outcome(lab.name, [c.kind for c in changes], "harmless")
        return judge(lab, changes, repro)
    finally:
        restore(slot, changes)


def restore(slot: Slot, changes: list[genbreak.Change]) -> None:
    lab = slot.lab
    for change in reversed(changes):
        genbreak.apply(change.undo, check=False)
        for ns in change.made:
            genlabs.run(["ip", "netns", "del", ns], check=False)
    for ns in lab.spaces:
        genlabs.run(["ip", "-n", ns, "neigh", "flush", "all"], check=False)
    if genlabs.differs(lab) or not genlabs.both_ways(lab, 3):
        slot.rebuild()


class Pool:
    """The labs, and every outcome so far."""

    def __init__(self) -> None:
        self.slots = [Slot(i) for i in range(len(LABS))]
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def run(self, example: tuple) -> None:
        def one(i: int) -> Outcome:
            start = time.monotonic()
            try:
                found = attempt(self.slots[i], example[i])
                found.seconds = round(time.monotonic() - start, 1)
                return found
            except Exception as exc:  # noqa: BLE001 (reported as a failure with its lab)
                self.slots[i].rebuild()
                return Outcome(self.slots[i].label, [k for k, _ in example[i]], "wrong",
                               why=f"{type(exc).__name__}: {exc}")
        with ThreadPoolExecutor(WORKERS) as pool:
            found = list(pool.map(one, range(len(LABS))))
        with self.lock:
            self.outcomes += found
        self.report()

    def report(self) -> dict:
        """The figures so far, also written to VETHWRAP_GEN_REPORT (a long run shows progress)."""
        figures = self.figures()
        if os.environ.get("VETHWRAP_GEN_REPORT"):
            with open(os.environ["VETHWRAP_GEN_REPORT"], "w") as handle:
                json.dump({**figures, "wrong_fixes": [o.__dict__ for o in self.outcomes
                                                      if o.verdict == "wrong"]}, handle,
                          indent=1)
        return figures

    def counted(self) -> int:
        return sum(o.verdict in COUNTED for o in self.outcomes)

    def figures(self) -> dict:
        counted = [o for o in self.outcomes if o.verdict in COUNTED]
        share = {v: sum(o.verdict == v for o in counted) for v in COUNTED}
        by_kind: dict[str, dict[str, int]] = {}
        for o in counted:
            for kind in o.kinds:
                by_kind.setdefault(kind, {}).setdefault(o.verdict, 0)
                by_kind[kind][o.verdict] += 1
        return {"breakages": len(counted), "attempts": len(self.outcomes),
                "harmless": sum(o.verdict == "harmless" for o in self.outcomes),
                "not_applicable": sum(o.verdict == "not-applicable" for o in self.outcomes),
                "seconds": round(time.monotonic() - self.started),
                "rebuilds": sum(s.rebuilds for s in self.slots),
                "mean_attempt_seconds": round(sum(o.seconds for o in self.outcomes)
                                              / max(len(self.outcomes), 1), 2),
                **share, "by_kind": by_kind,
                "causes": sorted({o.cause for o in counted if o.cause})}


@pytest.fixture(scope="module")
def pool(request):
    found = Pool()
    for slot in found.slots:
        request.addfinalizer(slot.cleanup)
    return found


def test_a_fix_heals_both_ways_on_the_path_or_is_not_printed(pool):
    examples = -(-WANTED * 2 // len(LABS))  # some break nothing: the rest are skipped

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(SEED)
    @given(EXAMPLE)
    def breaks(number):
        if pool.counted() < WANTED:
            pool.run(breakages(number))

    breaks()
    figures = pool.report()
    print(json.dumps({k: v for k, v in figures.items() if k != "by_kind"}))
    wrong = [o for o in pool.outcomes if o.verdict == "wrong"]
    assert not wrong, "\n\n".join(f"{o.lab} {o.kinds}: {o.why}\n" + "\n".join(o.repro)
                                  for o in wrong[:5])
    assert figures["breakages"] >= WANTED, figures
