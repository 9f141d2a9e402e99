"""The lifecycle as a state machine on real namespaces (hypothesis's RuleBasedStateMachine).

Rules: create (into fresh names and into namespaces made before), `up` of a lab file that is
edited between runs, destroy, `link set`, run and stop, a create killed with SIGKILL part-way
(then run again), namespaces made and deleted behind vethwrap's back. The rules call the
library the CLI is a layer over, in this process (a CLI's start-up costs more than most
steps); the killed create is the CLI, in a process of its own. After every step the
kernel must hold exactly what the model says, a foreign namespace beside the lab must be as it
was, and after the final destroy nothing of the run may be left. Seeded (derandomize), bounded
in examples and steps; a failure prints the shortest sequence of steps that shows it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest
from conftest import RUN_ID, ip
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from veth_wrap import api
from veth_wrap.model import labfile, shapes
from veth_wrap.model.linkopts import LinkOpts
from veth_wrap.model.names import p2p_ifname
from veth_wrap.model.topology import Kind

pytestmark = pytest.mark.integration

POOL = [f"vt{RUN_ID}m{n}" for n in range(6)]
SENTINEL = f"vt{RUN_ID}mx"  # someone else's namespace, with a veth pair and a name file
FILE_LAB = f"vt{RUN_ID}mf"
EXAMPLES, STEPS = 15, 21  # about 230 steps (examples vary in length); at least 200 must run
RAN = {"steps": 0, "examples": 0}
TRACE = f"/tmp/vt{RUN_ID}-lifecycle.log"
LAB_FILE = f"/tmp/{FILE_LAB}.yaml"


def vethwrap(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "veth_wrap", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def log(*words) -> None:
    """The steps as they run, for a failure that does not replay (timing)."""
    with open(TRACE, "a") as f:
        f.write(f"{time.monotonic():.2f} " + " ".join(map(str, words)) + "\n")


def _reap() -> None:
    """Collect services this process started that have ended (vethwrap stops them)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    log(*done.args[3:], "->", done.returncode)
    assert done.returncode == 0, f"{done.args[3:]}: {done.stdout}{done.stderr}"
    return done


def exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def links_of(ns: str) -> dict:
    """{ifname: (alias, mtu, up)} of a namespace."""
    found = json.loads(ip("-n", ns, "-j", "link", "show").stdout)
    return {link["ifname"]: (link.get("ifalias"), link["mtu"], "UP" in link["flags"])
            for link in found}


def namefile_mark(ns: str) -> str | None:
    """The lab named by /etc/netns/NS/hosts's mark ("" for a file not vethwrap's)."""
    try:
        with open(f"/etc/netns/{ns}/hosts") as f:
            first = f.readline()
    except OSError:
        return None
    return first.split("/")[1] if first.startswith("# vethwrap/") else ""


def services() -> set[tuple[str, str, str]]:
    """(lab, namespace, service) of every running process of this run's labs."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        except OSError:
            continue
        lab = env.get(b"VETHWRAP_LAB", b"").decode()
        if lab.startswith(f"vt{RUN_ID}m"):
            found.add((lab, env[b"VETHWRAP_NETNS"].decode(), env[b"VETHWRAP_SERVICE"].decode()))
    return found


@dataclass
class Lab:
    """A lab as the model has it: its namespaces, links, and those that were there before."""

    name: str
    members: list[str]
    links: list[tuple[str, str]]
    kind: str
    borrowed: set[str] = field(default_factory=set)
    mtu: int = 1500


def chain(members: list[str]) -> list[tuple[str, str]]:
    return list(zip(members, members[1:]))


class Lifecycle(RuleBasedStateMachine):
    """The model: labs, namespaces made by others, stale name files, services."""

    def __init__(self) -> None:
        super().__init__()
        self.labs: dict[str, Lab] = {}
        self.foreign: set[str] = set()  # made behind vethwrap's back, in no lab
        self.stale: set[str] = set()  # namespaces gone whose name file is left until a run
        self.running: set[tuple[str, str, str]] = set()
        # services whose namespace was deleted behind vethwrap's back: they keep it, unnamed,
        # and its name may be made again, for another namespace
        self.unnamed: set[tuple[str, str, str]] = set()
        self.count = 0
        self.sentinel = _foreign_state()

    # -- helpers --------------------------------------------------------------------------
    def used(self) -> set[str]:
        return {ns for lab in self.labs.values() for ns in lab.members} | self.foreign

    def free(self) -> list[str]:
        """Names the model has no namespace of (choices come from the model alone)."""
        return [ns for ns in POOL if ns not in self.used()]

    def lab_of(self, ns: str) -> Lab | None:
        return next((lab for lab in self.labs.values() if ns in lab.members), None)

    def ran(self) -> None:
        """A create, up or destroy ran: name files of gone namespaces are removed (a lab's
        own namespace has its file rewritten)."""
        self.stale.clear()

    # -- rules ----------------------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        RAN["examples"] += 1
        log("-- new run")

    @precondition(lambda self: len([ns for ns in POOL if ns not in self.used()]) >= 2)
    @rule(data=st.data(), size=st.integers(2, 3))
    def create(self, data, size) -> None:
        """create into free names, some of them namespaces made before by someone else."""
        choices = self.free() + sorted(self.foreign)
        if len(choices) < size:
            return
        members = data.draw(st.permutations(choices))[:size]
        if members[0] in self.labs:  # a lab of that name still has namespaces
            return
        kind = "pair" if size == 2 else "chain"
        log("create", *members)
        api.create(shapes.build(members, kind=Kind(kind)), check=False)
        self._built(members, kind)

    def _built(self, members: list[str], kind: str) -> None:
        lab = Lab(members[0], members, chain(members), kind, {m for m in members
                                                               if m in self.foreign})
        self.foreign -= set(members)
        self.labs[lab.name] = lab
        self.ran()

    @precondition(lambda self: len([ns for ns in POOL if ns not in self.used()]) >= 3)
    @rule(delay=st.sampled_from([0.0, 0.15, 0.3, 0.5, 0.8]))
    def create_killed_part_way(self, delay) -> None:
        """SIGKILL a create part-way; the same create run again finishes the lab."""
        members = self.free()[:3]
        if len(members) < 3 or members[0] in self.labs:
            return
        env = dict(os.environ, NO_COLOR="1")
        proc = subprocess.Popen([sys.executable, "-m", "veth_wrap", "create", *members, "-t",
                                 "chain", "--no-verify"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ok(vethwrap("create", *members, "-t", "chain", "--no-verify"))
        self._built(members, "chain")

    @rule(data=st.data())
    def up_edited_file(self, data) -> None:
        """up of a lab file, made or edited: a member added at the end or the last dropped."""
        lab = self.labs.get(FILE_LAB)
        free = self.free()
        members = list(lab.members) if lab else []
        grow = data.draw(st.booleans()) if lab and len(members) > 2 else True
        if grow and free:
            members += free[:2 - len(members)] if len(members) < 2 else free[:1]
        elif not grow:
            members = members[:-1]
        if len(members) < 2:
            return
        text = f"name: {FILE_LAB}\nnamespaces: [{', '.join(members)}]\nlinks:\n" + "".join(
            f"  - [{a}, {b}]\n" for a, b in chain(members))
        with open(LAB_FILE, "w") as f:
            f.write(text)
        log("up", *members)
        api.update(labfile.load(LAB_FILE), check=False)
        dropped = set(lab.members) - set(members) if lab else set()
        self.running = {s for s in self.running if s[1] not in dropped}
        self.labs[FILE_LAB] = Lab(FILE_LAB, members, chain(members), "custom")
        self.ran()

    @precondition(lambda self: self.labs)
    @rule(data=st.data(), by_lab=st.booleans())
    def destroy(self, data, by_lab) -> None:
        lab = self.labs[data.draw(st.sampled_from(sorted(self.labs)))]
        log("destroy", lab.name, by_lab)
        if by_lab or not lab.members:
            api.destroy(lab=lab.name)
        else:
            api.destroy(lab.members)
        del self.labs[lab.name]
        self.foreign |= lab.borrowed
        self.running = {s for s in self.running if s[0] != lab.name}
        self.ran()

    @precondition(lambda self: any(lab.links and lab.name != FILE_LAB
                                   for lab in self.labs.values()))
    @rule(data=st.data(), mtu=st.sampled_from([1280, 1500, 4000, 9000]))
    def link_set(self, data, mtu) -> None:
        names = sorted(n for n, lab in self.labs.items() if lab.links and n != FILE_LAB)
        lab = self.labs[data.draw(st.sampled_from(names))]
        log("link set", lab.name, mtu)
        api.link_set(None, None, LinkOpts(mtu=mtu), False, lab=lab.name)
        lab.mtu = mtu

    @precondition(lambda self: self.labs)
    @rule(data=st.data())
    def run_service(self, data) -> None:
        spaces = sorted(ns for lab in self.labs.values() for ns in lab.members)
        if not spaces:
            return
        ns = data.draw(st.sampled_from(spaces))
        name = f"s{self.count}"
        self.count += 1
        log("run", ns, name)
        api.start(ns, ["sleep", "600"], name)
        self.running.add((self.lab_of(ns).name, ns, name))

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def stop_service(self, data) -> None:
        lab, ns, name = data.draw(st.sampled_from(sorted(self.running)))
        if not self.lab_of(ns) or (lab, ns, name) in self.unnamed:
            return  # its name is gone (or another's now): destroy of its lab stops it
        log("stop", ns, name)
        api.stop(ns, name)
        _reap()
        self.running.discard((lab, ns, name))

    @precondition(lambda self: len(self.used()) < len(POOL))
    @rule(data=st.data())
    def namespace_made_behind_the_back(self, data) -> None:
        free = self.free()
        if free:
            ns = data.draw(st.sampled_from(free))
            ip("netns", "add", ns)
            self.foreign.add(ns)
            log("netns add", ns)

    @precondition(lambda self: self.used())
    @rule(data=st.data())
    def namespace_deleted_behind_the_back(self, data) -> None:
        ns = data.draw(st.sampled_from(sorted(self.used())))
        ip("netns", "del", ns)
        log("netns del", ns)
        lab = self.lab_of(ns)
        if lab is None:
            self.foreign.discard(ns)
            return
        lab.members.remove(ns)
        lab.borrowed.discard(ns)
        inside = {s for s in self.running - self.unnamed if s[1] == ns}
        self.unnamed |= inside
        if not inside:  # else it lives on, unnamed
            lab.links = [(a, b) for a, b in lab.links if ns not in (a, b)]
        self.stale.add(ns)
        self._settle(lab)

    def _settle(self, lab: Lab, seconds: float = 20) -> None:
        """Wait for the kernel: a deleted namespace is torn down later, by a work queue, and
        the peers of its veth ends go only then."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                for ns in lab.members:
                    self._lab_namespace(lab, ns)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # -- what the kernel must hold --------------------------------------------------------
    @invariant()
    def kernel_holds_the_model(self) -> None:
        try:
            self._holds()
        except AssertionError as exc:
            log(f"INVARIANT FAILED: {exc}; stale={self.stale} foreign={self.foreign} "
                f"labs={self.labs}")
            raise

    def _holds(self) -> None:
        RAN["steps"] += 1
        _reap()
        for ns in POOL:
            lab = self.lab_of(ns)
            if lab is not None:
                self._lab_namespace(lab, ns)
            elif ns in self.foreign:
                assert exists(ns) and _fresh(ns), ns
                self._no_name_file(ns)
            else:
                assert not exists(ns), f"{ns} exists, the model has it gone"
                self._no_name_file(ns)
        assert services() == self.running
        assert _foreign_state() == self.sentinel

    def _no_name_file(self, ns: str) -> None:
        """None, but a stale one that no create, up or destroy has run since may be left (or
        may be gone already: another user's vethwrap on this machine removes it too)."""
        assert namefile_mark(ns) is None or ns in self.stale, (ns, namefile_mark(ns))

    def _lab_namespace(self, lab: Lab, ns: str) -> None:
        assert exists(ns), f"{ns} of lab {lab.name} is gone"
        links = links_of(ns)
        ends = {p2p_ifname(b if a == ns else a) for a, b in lab.links if ns in (a, b)}
        assert set(links) == {"lo"} | ends, (ns, links)
        for end in ends:
            alias, mtu, _ = links[end]
            assert alias and alias.startswith(f"vethwrap/{lab.name}/end/"), (ns, end, alias)
            assert mtu == lab.mtu, (ns, end, mtu, lab.mtu)
        lo_alias = links["lo"][0] or ""
        role = "borrowed" if ns in lab.borrowed else "netns"
        if role == "netns" or lo_alias:  # a borrowed lo is marked when create changed it
            assert lo_alias.startswith(f"vethwrap/{lab.name}/{role}"), (ns, lo_alias)
        assert namefile_mark(ns) == lab.name, ns

    def teardown(self) -> None:
        """Destroy every lab, check that nothing of the run is left, then clean by name."""
        try:
            for name in sorted(self.labs):
                api.destroy(lab=name)
            _reap()
            for ns in POOL:
                if ns in self.foreign or any(ns in lab.borrowed for lab in self.labs.values()):
                    assert _fresh(ns), f"{ns}, made by someone else, was left changed"
                else:
                    assert not exists(ns), f"{ns} is left"
                assert namefile_mark(ns) is None, f"/etc/netns/{ns}/hosts is left"
            assert not services(), "a process of the run is left"
            left = [d for d in os.listdir("/run/vethwrap/logs")
                    if d.startswith(f"vt{RUN_ID}m")] if os.path.isdir("/run/vethwrap/logs") \
                else []
            assert not left, f"logs left: {left}"
            assert _lock_free(), "vethwrap's lock is still held"
        finally:
            _clean()


def _fresh(ns: str) -> bool:
    """A namespace as `ip netns add` makes it: lo alone, down, unmarked."""
    return links_of(ns) == {"lo": (None, 65536, False)}


def _foreign_state():
    links = json.loads(ip("-n", SENTINEL, "-j", "addr", "show").stdout)
    with open(f"/etc/netns/{SENTINEL}/hosts") as f:
        text = f.read()
    return text, sorted((link["ifname"], link.get("ifalias"), link["mtu"], str(link["flags"]),
                         str(link.get("addr_info"))) for link in links)


def _lock_free(seconds: float = 20) -> bool:
    """The lock is not held by a process of this run (another run's may take it a moment)."""
    deadline = time.monotonic() + seconds
    fd = os.open("/run/vethwrap/lock", os.O_RDWR | os.O_NOFOLLOW)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
    finally:
        os.close(fd)


def _clean() -> None:
    """Everything of the run, by exact name and PID, whatever state a failure left."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    mine = f"VETHWRAP_LAB=vt{RUN_ID}m".encode() in f.read()
            except OSError:
                continue
            if mine:
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    for ns in POOL:
        if exists(ns):
            ip("netns", "del", ns, check=False)
        path = f"/etc/netns/{ns}/hosts"
        if namefile_mark(ns):
            os.unlink(path)
        if os.path.isdir(f"/etc/netns/{ns}") and not os.listdir(f"/etc/netns/{ns}"):
            os.rmdir(f"/etc/netns/{ns}")
    if os.path.exists(LAB_FILE):
        os.unlink(LAB_FILE)
    logs = "/run/vethwrap/logs"
    for name in os.listdir(logs) if os.path.isdir(logs) else []:
        if name.startswith(f"vt{RUN_ID}m"):
            subprocess.run(["rm", "-rf", "--", f"{logs}/{name}"], check=False)


@pytest.fixture
def sentinel():
    """Someone else's namespace beside the labs: a veth pair, an address, a name file."""
    ip("netns", "add", SENTINEL)
    ip("-n", SENTINEL, "link", "add", "theirs0", "type", "veth", "peer", "name", "theirs1")
    ip("-n", SENTINEL, "addr", "add", "10.0.0.1/24", "dev", "theirs0")
    ip("-n", SENTINEL, "link", "set", "theirs0", "up")
    os.makedirs(f"/etc/netns/{SENTINEL}", exist_ok=True)
    with open(f"/etc/netns/{SENTINEL}/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n10.0.0.1 theirs\n")
    yield
    ip("netns", "del", SENTINEL, check=False)
    os.unlink(f"/etc/netns/{SENTINEL}/hosts")
    os.rmdir(f"/etc/netns/{SENTINEL}")


def test_lifecycle_model(sentinel):
    RAN.update(steps=0, examples=0)
    began = time.monotonic()
    machine = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, derandomize=True,
                       deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(Lifecycle)
    try:
        machine.TestCase().runTest()
    except BaseException:
        print(f"every step, with times: {TRACE}")  # a failure that timing made not replay
        raise
    finally:
        _clean()
    os.unlink(TRACE)
    took = time.monotonic() - began
    steps = RAN["steps"] - RAN["examples"]  # the invariant also runs once before any step
    print(f"lifecycle model: {steps} steps in {RAN['examples']} runs, {took:.0f} s")
    assert steps >= 200, RAN
