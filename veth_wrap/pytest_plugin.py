"""pytest plugin: the `vethwrap_lab` fixture builds labs for a test and always removes them."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import pytest


@dataclass
class TestLab:
    """A lab built for one test: real names behind the names the test asked for."""

    __test__ = False  # not a test class, whatever its name

    lab: object
    names: dict[str, str] = field(default_factory=dict)
    started: list = field(default_factory=list)  # Popens and Services, stopped at teardown
    created: object = None  # what api.create returned: teardown removes what it made, by name
    faults: list = field(default_factory=list)  # partitions, impairments, flaps: undone first

    def __getitem__(self, name: str) -> str:
        """The real namespace name for a name the test used."""
        return self.names[name]

    def address(self, name: str, seen_from: Optional[str] = None) -> str:
        """Where `seen_from` reaches namespace `name` (its first address by default)."""
        return self.lab.address_of(self[name], self[seen_from] if seen_from else None)

    def run(self, name: str, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside namespace `name` (ip netns exec), capturing text output."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 30)
        return subprocess.run(["ip", "netns", "exec", self[name], *argv], **kwargs)

    def popen(self, name: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start a command inside namespace `name`; it is stopped at teardown if still running.

        It runs in a session of its own, so a terminal's Ctrl-C reaches pytest, not it.
        """
        kwargs.setdefault("start_new_session", True)
        process = subprocess.Popen(["ip", "netns", "exec", self[name], *argv], **kwargs)
        self.started.append(process)
        return process

    def start(self, ns: str, argv: Sequence[str], **kwargs):
        """A background service inside namespace `ns` (veth_wrap.start), stopped at teardown."""
        from veth_wrap import api

        service = api.start(self[ns], argv, **kwargs)
        self.started.append(service)
        return service

    def partition(self, *groups: Sequence[str], oneway: bool = False):
        """Cut groups of the test's names apart: `with lab.partition(["a"], ["b", "c"]):`.

        Undone at the block's end (or by lab.heal(), or at teardown), also when the test fails.
        """
        from veth_wrap.faults import scoped

        real = [[self[name] for name in group] for group in groups]
        return self._keep(scoped.partition(self.lab.name, self.lab.namespaces(), real, oneway))

    def heal(self):
        """Undo every fault of the lab: partitions, flaps, timed impairments, timelines."""
        from veth_wrap.faults import scoped

        for fault in reversed(self.faults):
            if not fault.healed:
                fault.undo()  # heal knows services and tables; the fixture puts these back
        return scoped.heal(self.lab.name, self.lab.namespaces())

    def impaired(self, name: str, interface: Optional[str] = None, **options: str):
        """Impair namespace `name`'s ends (or one): `with lab.impaired("a", loss="20%"):`.

        options: delay, jitter, loss, rate, as for `vethwrap link set`. What the ends held
        before comes back at the block's end, or at teardown.
        """
        from veth_wrap.faults import scoped
        from veth_wrap.model.linkopts import link_opts

        ends = [interface] if interface else [end.ifname for end in self.lab.ends_in(self[name])]
        return self._keep(scoped.impaired(self[name], ends, link_opts(**options)))

    def flap(self, name: str, down: str = "1s", up: str = "1s", count: Optional[int] = None,
             interface: Optional[str] = None):
        """Flap namespace `name`'s link (its first, or `interface`) in the background."""
        from veth_wrap.faults import scoped

        ifname = interface or self.lab.ends_in(self[name])[0].ifname
        return self._keep(scoped.flap(self[name], ifname, down, up, count))

    def _keep(self, fault):
        self.faults.append(fault)
        return fault

    def undo_faults(self) -> None:
        """Teardown: every fault the test placed is undone, newest first, then the lab healed."""
        from veth_wrap.faults import scoped

        try:
            for fault in reversed(self.faults):
                fault.undo()
        finally:
            if self.faults:
                scoped.heal(self.lab.name, self.lab.namespaces())

    def stop_started(self) -> None:
        """End what popen and start began, by PID: SIGTERM, a moment, then SIGKILL."""
        for item in reversed(self.started):
            if isinstance(item, subprocess.Popen):
                _end(item)
            elif item.alive():
                item.stop(grace=1.0)


def _end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class LabFactory:
    """Builds labs with names unique to this run and worker; destroys them all at the end."""

    def __init__(self) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
        self.prefix = f"vp{uuid.uuid4().hex[:4]}{worker[-2:]}"
        self.count = 0
        self.built: list[TestLab] = []

    def _next_prefix(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}-"

    def __call__(self, namespaces: Sequence[str], topology: Union[str, None] = None,
                 subnet: Optional[str] = None, verify: bool = True) -> TestLab:
        """Build a pair/bridge/chain/mesh of the given (short) namespace names."""
        from veth_wrap.model import labfile, shapes
        from veth_wrap.model.topology import Kind

        prefix = self._next_prefix()
        real = {name: prefix + name for name in namespaces}
        lab = shapes.build(list(real.values()), kind=Kind(topology) if topology else None,
                           subnet=subnet, lab=prefix.rstrip("-"))
        lab = labfile.with_prefix(lab, prefix)  # the short names resolve inside the lab
        return self._build(TestLab(lab, real), verify)

    def from_file(self, path, verify: bool = True) -> TestLab:
        """Build a lab file, its names prefixed."""
        from veth_wrap.model import labfile

        prefix = self._next_prefix()
        lab = labfile.load(path, prefix=prefix)
        return self._build(TestLab(lab, {ns[len(prefix):]: ns for ns in lab.members}), verify)

    def _build(self, built: TestLab, verify: bool) -> TestLab:
        from veth_wrap import api

        self.built.append(built)  # before building: a half-built lab is removed too
        built.created = api.create(built.lab, check=verify)
        return built

    def destroy_all(self) -> None:
        """Remove every lab built, by lab name, then any namespace left, by exact name."""
        from veth_wrap import api

        for built in reversed(self.built):
            try:
                if built.created is not None:
                    _undo_faults(built)
                built.stop_started()
                if built.created is not None:  # stops what runs inside, deletes by name
                    api.destroy_built(built.created)
                else:  # create failed half-way: find what it left by the lab's marks
                    api.destroy(lab=built.lab.name)
            finally:
                for ns in built.lab.namespaces():
                    if os.path.lexists(f"/run/netns/{ns}"):  # a process only when one is left
                        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _undo_faults(built: TestLab) -> None:
    """Undo a test's faults before its lab goes; one that cannot be undone goes with the lab."""
    from veth_wrap.errors import VethwrapError

    try:
        built.undo_faults()
    except VethwrapError:
        pass  # destroy below removes every fault service and table with the lab


@pytest.fixture
def vethwrap_lab():
    """A factory: vethwrap_lab(["srv", "cli"]) builds a lab; removed after the test, always."""
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.destroy_all()
