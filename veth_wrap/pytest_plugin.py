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
        """Start a command inside namespace `name`."""
        return subprocess.Popen(["ip", "netns", "exec", self[name], *argv], **kwargs)


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
        from veth_wrap.model import shapes
        from veth_wrap.model.topology import Kind

        prefix = self._next_prefix()
        real = {name: prefix + name for name in namespaces}
        lab = shapes.build(list(real.values()), kind=Kind(topology) if topology else None,
                           subnet=subnet, lab=prefix.rstrip("-"))
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
        api.create(built.lab, check=verify)
        return built

    def destroy_all(self) -> None:
        """Remove every lab built, by lab name, then any namespace left, by exact name."""
        from veth_wrap import api

        for built in reversed(self.built):
            try:
                api.destroy(lab=built.lab.name)
            finally:
                for ns in built.lab.namespaces():
                    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def vethwrap_lab():
    """A factory: vethwrap_lab(["srv", "cli"]) builds a lab; removed after the test, always."""
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.destroy_all()
