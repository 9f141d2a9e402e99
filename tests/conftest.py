"""Shared fixtures: a unique per-run prefix, namespaces deleted by exact name, root checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest

RUN_ID = uuid.uuid4().hex[:5]


def is_root() -> bool:
    """True when this process may create namespaces."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


def pytest_collection_modifyitems(config, items):
    """Integration tests skip without root; under CI=true a skip is a failure."""
    if is_root():
        return
    reason = "needs root and iproute2 to create network namespaces"
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_logreport(report):
    """Under CI=true, turn a skipped integration test into a failure."""
    if os.environ.get("CI") == "true" and report.skipped and "integration" in report.keywords:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true: {report.longrepr}"


def ip(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """Run ip directly, for fixtures and for reading state in assertions."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, input=input)


_OTHER_RUN = re.compile(r"v[tr]([0-9a-f]{5})")


def _ours_or_host(name: str) -> bool:
    """False for names made by another test run going on at the same time (another prefix)."""
    found = _OTHER_RUN.search(name)
    return found is None or found.group(1) == RUN_ID


def kernel_snapshot() -> tuple[list[str], list[str]]:
    """`ip netns list` and root `ip link` names: what a test must leave unchanged."""
    netns = sorted(line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line)
    links = sorted(line.split(": ")[1].split("@")[0]
                   for line in ip("-o", "link", "show").stdout.splitlines())
    return [n for n in netns if _ours_or_host(n)], [n for n in links if _ours_or_host(n)]


class Namespaces:
    """Hands out unique namespace names and deletes them, by exact name, at the end."""

    def __init__(self, tag: str) -> None:
        self.prefix = f"vt{RUN_ID}{tag}"
        self.names: list[str] = []
        self._count = 0

    def name(self, label: str = "") -> str:
        """A fresh unique name (not created); it is deleted at teardown if it exists."""
        self._count += 1
        name = f"{self.prefix}{self._count}{label}"
        self.names.append(name)
        return name

    def make(self, label: str = "") -> str:
        """Create a namespace now and return its name."""
        name = self.name(label)
        ip("netns", "add", name)
        return name

    def cleanup(self) -> None:
        """Delete every namespace handed out, by exact name."""
        existing = set(kernel_snapshot()[0])
        for name in self.names:
            for hub in (name, f"vethwrap-{name}"):
                if hub in existing:
                    ip("netns", "del", hub, check=False)
                remove_name_file(hub)


def remove_name_file(name: str) -> None:
    """Remove /etc/netns/NAME/hosts if vethwrap wrote it (a test that failed half-way)."""
    path = f"/etc/netns/{name}/hosts"
    try:
        with open(path) as f:
            ours = f.readline().startswith("# vethwrap/")
    except OSError:
        return
    if ours:
        os.unlink(path)
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass


@pytest.fixture
def netns(request):
    """Unique namespace names for one test, deleted afterwards even when the test fails."""
    tag = format(abs(hash(request.node.nodeid)) % 46656, "x")
    spaces = Namespaces(tag)
    request.addfinalizer(spaces.cleanup)
    return spaces


@pytest.fixture
def unchanged():
    """Assert that the test leaves `ip netns list` and root `ip link` as it found them."""
    before = kernel_snapshot()
    yield before
    assert kernel_snapshot() == before


@pytest.fixture
def cli():
    """Run the vethwrap CLI as a user would, in a subprocess; returns CompletedProcess.

    For calls where the process is what is tested (see tests/inprocess.py); the others run
    in-process with inprocess.vethwrap, which answers alike without starting Python again.
    """

    def run(*args: str, input: str | None = None, env: dict | None = None, user: int | None = None):
        full_env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
        full_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "veth_wrap", *args], capture_output=True,
                              text=True, input=input, env=full_env, user=user, timeout=600)

    return run


@pytest.fixture
def prefixed(request):
    """A unique name prefix for lab files; remember(path) notes a file built with it, and
    every namespace of the labs noted is deleted by exact name at the end."""
    from veth_wrap.model import foreign

    prefix = f"vt{RUN_ID}{abs(hash(request.node.nodeid)) % 4096:x}-"
    used: list = []

    def cleanup():
        existing = set(kernel_snapshot()[0])
        for ns in sorted({ns for lab in used for ns in lab.namespaces()} & existing):
            ip("netns", "del", ns, check=False)

    def remember(path):
        used.append(foreign.parse(open(path).read(), str(path), prefix, ignore_unsupported=True))
        return prefix

    request.addfinalizer(cleanup)
    return remember


def run_inner_pytest(folder, source: str) -> subprocess.CompletedProcess:
    """Run `source` as test_inner.py in folder with a pytest of its own, the plugin loaded."""
    import importlib.metadata
    from pathlib import Path

    (folder / "test_inner.py").write_text(source)
    plugins = [ep.name for ep in importlib.metadata.entry_points(group="pytest11")]
    extra = [] if "vethwrap" in plugins else ["-p", "veth_wrap.pytest_plugin"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *extra, "test_inner.py"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


def until(check, what: str, timeout: float = 30.0, deadline: float | None = None,
          every: float = 0.05):
    """Poll check() until it returns something true (returned), or fail naming what was
    awaited once the deadline (monotonic; now + timeout by default) passes."""
    import time

    deadline = deadline if deadline is not None else time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not reached in time: {what}"
        time.sleep(every)
