"""Helpers for the tests that run inside the stock-kernel guest: the CLI, names, read-backs.

The tests use vethwrap only through its CLI (`python -m veth_wrap`, this checkout on PYTHONPATH)
and standard tools. Every name is unique to the run (VETHWRAP_STOCK_RUN, given by the outer test
so that it can look for leftovers on the host) and deleted by exact name at the end, even here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

RUN = os.environ.get("VETHWRAP_STOCK_RUN") or uuid.uuid4().hex[:5]
MEASURED = os.environ.get("VETHWRAP_STOCK_MEASURED")  # JSON lines for the outer test's report
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def in_guest() -> tuple[bool, str]:
    """Whether this is the stock-kernel guest, and if not, why these tests do not run."""
    if os.environ.get("VETHWRAP_IN_GUEST") != "1":
        return False, ("runs inside the stock-kernel guest "
                       "(tests/integration/test_stock_kernel.py boots it)")
    try:
        cmdline = Path("/proc/cmdline").read_text()
    except OSError:
        cmdline = ""
    if "virtme" not in cmdline:
        return False, ("VETHWRAP_IN_GUEST=1, but this kernel was not booted by virtme-ng: "
                       "refusing to change its modules, firewall and sysctls")
    return True, ""


def run(*argv: str, check: bool = True, timeout: float = 300,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run a program; a failure shows its argv, exit status and output."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          input=input, check=False)
    if check:
        assert done.returncode == 0, (
            f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def vethwrap(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, with this interpreter."""
    return run(sys.executable, "-m", "veth_wrap", *args, check=check, timeout=timeout)


def vethwrap_json(*args: str, check: bool = True) -> dict:
    """The CLI with --json, parsed."""
    return json.loads(vethwrap(*args, "--json", check=check).stdout)


def netns_list() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line]


def root_links() -> list[str]:
    out = run("ip", "-o", "link", "show").stdout
    return [line.split(": ")[1].split("@")[0] for line in out.splitlines()]


def measured(name: str, value) -> None:
    """Keep a measurement for the outer test's report."""
    if MEASURED:
        with open(MEASURED, "a") as out:
            out.write(json.dumps({"name": name, "value": value}) + "\n")


class Names:
    """Unique names for one test; namespaces, lab hubs and root links deleted by exact name."""

    def __init__(self, nodeid: str) -> None:
        tag = zlib.crc32(nodeid.encode()) % 1296
        self.prefix = f"s{RUN}{DIGITS[tag // 36]}{DIGITS[tag % 36]}"
        self.names: list[str] = []
        self.links: list[str] = []

    def __call__(self, count: int) -> list[str]:
        fresh = [f"{self.prefix}{DIGITS[len(self.names) + i]}" for i in range(count)]
        self.names += fresh
        return fresh

    def root_link(self, name: str) -> None:
        """A link in the root namespace (a host bridge) to delete at the end."""
        self.links.append(name)

    def cleanup(self) -> None:
        existing = set(netns_list())
        for name in self.names:
            for space in (name, f"vethwrap-{name}"):
                if space in existing:
                    run("ip", "netns", "del", space, check=False)
        links = set(root_links())
        for link in self.links:
            if link in links:
                run("ip", "link", "del", link, check=False)

    def left(self) -> list[str]:
        """Namespaces of this test still in `ip netns list`."""
        return [space for space in netns_list() if space.startswith(self.prefix)
                or space.startswith(f"vethwrap-{self.prefix}")]


def address(created: dict, namespace: str) -> str:
    """The first address `create --json` gave namespace on its links."""
    for link in created["links"]:
        for end in (link["a"], link["b"]):
            if end["namespace"] == namespace and end["addresses"]:
                return end["addresses"][0].split("/")[0]
    raise AssertionError(f"create --json gave {namespace} no address: {created}")


def impairments(*namespaces: str) -> dict[tuple[str, str], dict]:
    """{(namespace, interface): impairments}, from one `vethwrap show NS ... --json`."""
    shown = vethwrap_json("show", *namespaces)
    return {(space["name"], iface["name"]): iface.get("impairments") or {}
            for lab in shown["labs"] for space in lab["namespaces"]
            if space["name"] in namespaces for iface in space["interfaces"]}
