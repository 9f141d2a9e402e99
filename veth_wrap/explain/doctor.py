"""A read-only preflight of the host: tools, privileges, /run/netns, bridges and firewalls.

Nothing here changes the host: no module is loaded (iptables and nft are only asked when their
tables already exist in the kernel), no sysctl is written.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from veth_wrap.errors import VethwrapError
from veth_wrap.explain.firewall import parse_iptables_save, parse_nft
from veth_wrap.explain.fwread import tables_loaded
from veth_wrap.kernel import reader
from veth_wrap.run.runner import NETNS_RUN, Runner, default_runner

BR_MAX_PORTS = 1024  # the kernel's limit on ports of one bridge (net/bridge/br_private.h)
NETNS_DIR = NETNS_RUN
T = TypeVar("T")
PROC = "/proc/sys"


class Status(str, Enum):
    """How a check came out."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass
class Check:
    """One line of the preflight: what was checked, how it came out, and the fix if any."""

    name: str
    status: Status
    detail: str
    fix: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "fix": self.fix}


def doctor(runner: Runner | None = None) -> list[Check]:
    """Run every check and return them in order."""
    runner = runner or default_runner()
    checks: list[Check] = []
    for probe in CHECKS:
        found = probe(runner)
        checks.extend(found if isinstance(found, list) else [found])
    return checks


def _run(runner: Runner, argv: list[str]) -> tuple[int, str]:
    """(exit status, stdout and stderr) of a read-only command; 127 when it cannot run."""
    try:
        result = runner.run(argv, check=False)
    except VethwrapError:
        return 127, ""
    return result.returncode, result.stdout + result.stderr


def _read(read: Callable[..., T], *args) -> T | None:
    """A kernel read for a preflight: None when its program cannot run at all."""
    try:
        return read(*args)
    except VethwrapError:
        return None


def read_proc(path: str) -> str | None:
    """A /proc/sys value (of this process's namespace), or None when absent."""
    try:
        with open(os.path.join(PROC, path)) as handle:
            return handle.read().strip()
    except OSError:
        return None


def check_ip(runner: Runner) -> Check:
    """iproute2 present and able to print JSON for links and routes."""
    if shutil.which("ip") is None:
        return Check("iproute2", Status.PROBLEM, "ip not found", _apt("iproute2"))
    _, version = _run(runner, ["ip", "-V"])
    found = re.search(r"iproute2-([\w.]+)", version)
    answer = _read(reader.route_get, None, "127.0.0.1", runner)
    works = answer is not None and not answer.code and answer.route is not None
    name = found.group(1) if found else version.strip() or "unknown version"
    if not works:
        return Check("iproute2", Status.PROBLEM, f"ip {name} prints no JSON for "
                     "'ip -j route get': too old", _apt("iproute2"))
    return Check("iproute2", Status.OK, f"ip {name}, JSON output works")


def check_ping(runner: Runner) -> Check:
    """iputils ping present (its -W and -i options and summary lines are relied on)."""
    if shutil.which("ping") is None:
        return Check("ping", Status.PROBLEM, "ping not found", _apt("iputils-ping"))
    _, text = _run(runner, ["ping", "-V"])
    if "iputils" not in text:
        return Check("ping", Status.PROBLEM, f"ping is not iputils' ({text.strip()[:60]!r})",
                     _apt("iputils-ping"))
    return Check("ping", Status.OK, text.strip().splitlines()[0])


def check_tools(runner: Runner) -> list[Check]:
    """sysctl (for diagnose), iptables and nft (to read firewalls)."""
    found = [Check("sysctl", Status.OK, "present") if shutil.which("sysctl") else
             Check("sysctl", Status.PROBLEM, "sysctl not found: diagnose reads sysctls with it",
                   _apt("procps"))]
    missing = [t for t in ("iptables-save", "nft") if shutil.which(t) is None]
    if missing:
        found.append(Check("firewall tools", Status.WARNING, f"{', '.join(missing)} not found: "
                           "diagnose cannot read firewalls", _apt("iptables", "nftables")))
    else:
        found.append(Check("firewall tools", Status.OK, "iptables-save and nft present"))
    return found


def _apt(*packages: str) -> list[str]:
    return ["apt-get", "install", "-y", *packages]


def check_privileges(runner: Runner) -> Check:
    """Root, or CAP_SYS_ADMIN and CAP_NET_ADMIN (to enter and change namespaces)."""
    if os.geteuid() == 0:
        return Check("privileges", Status.OK, "running as root")
    caps = _effective_caps()
    if caps & (1 << 12) and caps & (1 << 21):
        return Check("privileges", Status.OK, "CAP_NET_ADMIN and CAP_SYS_ADMIN held")
    return Check("privileges", Status.PROBLEM, "not root: creating, entering and diagnosing "
                 "namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)",
                 ["sudo", "vethwrap", "doctor"])


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def check_netns_dir(runner: Runner) -> Check:
    """/run/netns exists and is writable, or can be made by the first `ip netns add`."""
    if not os.path.exists(NETNS_DIR):
        parent_ok = os.access(os.path.dirname(NETNS_DIR), os.W_OK)
        status = Status.OK if parent_ok else Status.PROBLEM
        return Check("/run/netns", status, "absent; the first 'ip netns add' creates it"
                     if parent_ok else "absent, and /run is not writable")
    if not os.path.isdir(NETNS_DIR):
        return Check("/run/netns", Status.PROBLEM, "exists but is not a directory")
    if not os.access(NETNS_DIR, os.W_OK | os.X_OK):
        return Check("/run/netns", Status.PROBLEM, "not writable by this user",
                     ["sudo", "vethwrap", "doctor"])
    count = len(os.listdir(NETNS_DIR))
    return Check("/run/netns", Status.OK, f"usable; {count} named namespaces")


def check_br_netfilter(runner: Runner) -> Check:
    """br_netfilter hands bridged traffic to iptables: root-namespace bridges meet FORWARD."""
    calls = {fam: read_proc(f"net/bridge/bridge-nf-call-{fam}") for fam in ("iptables",
                                                                             "ip6tables")}
    if calls["iptables"] is None:
        return Check("br_netfilter", Status.OK, "not loaded: bridged traffic skips iptables")
    on = [f"bridge-nf-call-{fam} = 1" for fam, value in calls.items() if value == "1"]
    if not on:
        return Check("br_netfilter", Status.OK, "loaded, but bridge-nf-call-* are 0")
    return Check("br_netfilter", Status.WARNING, f"loaded ({', '.join(on)}): traffic across a "
                 "bridge in the root namespace goes through the FORWARD chain; vethwrap's "
                 "bridges live in their own namespaces and are not affected")


def check_forward_policies(runner: Runner) -> list[Check]:
    """The FORWARD policies of iptables (IPv4, IPv6) and the forward chains of nftables."""
    nft_loaded, legacy = tables_loaded()
    if not (nft_loaded or legacy):
        return [Check("FORWARD policy", Status.OK, "no iptables or nftables tables in the "
                      "kernel: everything is forwarded")]
    bridged = read_proc("net/bridge/bridge-nf-call-iptables") == "1"
    checks = [_iptables_forward(runner, tool, bridged) for tool in ("iptables", "ip6tables")]
    if nft_loaded:
        checks.append(_nft_forward(runner, bridged))
    return checks


def _iptables_forward(runner: Runner, tool: str, bridged: bool) -> Check:
    name = f"FORWARD policy ({tool}, IPv{'4' if tool == 'iptables' else '6'})"
    if shutil.which(f"{tool}-save") is None:
        return Check(name, Status.WARNING, f"{tool}-save not found: not checked",
                     _apt("iptables"))
    text = _read(reader.table_saved, None, f"{tool}-save", "filter", runner) or ""
    chains = {c.name: c for c in parse_iptables_save(text, tool)}
    forward = chains.get("FORWARD")
    if forward is None or forward.policy != "drop":
        return Check(name, Status.OK, "ACCEPT (or no filter table)")
    docker = "DOCKER-USER" in chains
    fix = [tool, "-I", "DOCKER-USER" if docker else "FORWARD", "-m", "physdev",
           "--physdev-is-bridged", "-j", "ACCEPT"]
    what = "DROP (Docker's default)" if docker else "DROP"
    if not bridged:
        return Check(name, Status.OK, f"{what}; routed traffic of the root namespace only")
    return Check(name, Status.WARNING, f"{what}, and br_netfilter is on: frames across a "
                 "bridge in the root namespace are dropped unless a rule accepts them", fix)


def _nft_forward(runner: Runner, bridged: bool) -> Check:
    name = "forward chains (nftables)"
    if shutil.which("nft") is None:
        return Check(name, Status.WARNING, "nft not found: not checked", _apt("nftables"))
    ruleset = _read(reader.one, None, reader.RULESET, runner)
    chains = parse_nft(ruleset) if ruleset else []
    dropping = [f"{c.family} {c.table} {c.name}" for c in chains
                if c.hook == "forward" and c.policy == "drop" and c.family != "bridge"]
    if not dropping:
        return Check(name, Status.OK, "no forward chain with policy drop")
    status = Status.WARNING if bridged else Status.OK
    return Check(name, status, f"policy drop in {', '.join(dropping)}"
                 + ("; with br_netfilter on, root-namespace bridges are affected"
                    if bridged else ""))


def check_docker(runner: Runner) -> Check:
    """Docker loads br_netfilter and sets the FORWARD policy to DROP."""
    if shutil.which("docker") is None and not os.path.exists("/var/run/docker.sock"):
        return Check("docker", Status.OK, "not installed")
    running = os.path.exists("/var/run/docker.sock")
    return Check("docker", Status.WARNING, ("installed and running" if running else
                 "installed") + ": it loads br_netfilter and sets the iptables FORWARD "
                 "policy to DROP, which drops traffic across root-namespace bridges")


def check_rp_filter(runner: Runner) -> Check:
    """Strict rp_filter (inherited by new namespaces) drops replies on asymmetric paths."""
    values = {k: read_proc(f"net/ipv4/conf/{k}/rp_filter") for k in ("all", "default")}
    inherit = read_proc("net/core/devconf_inherit_init_net") or "0"
    shown = ", ".join(f"{k} = {v}" for k, v in values.items())
    strict = [k for k, v in values.items() if v == "1"]
    inherited = inherit in ("0", "1")
    if not strict:
        return Check("rp_filter", Status.OK, f"{shown} (0 off, 2 loose)")
    where = "new namespaces inherit it" if inherited else "the root namespace only"
    return Check("rp_filter", Status.WARNING, f"{shown}: strict; {where}; packets arriving on "
                 "another interface than the route back are dropped",
                 ["sysctl", "-w", *(f"net.ipv4.conf.{k}.rp_filter=2" for k in strict)])


def check_bridge_ports(runner: Runner) -> Check:
    """A bridge takes at most 1024 ports."""
    return Check("bridge ports", Status.OK, f"a Linux bridge takes at most {BR_MAX_PORTS} "
                 "ports; a lab with more members needs more than one bridge")


def check_name_files(runner: Runner) -> Check:
    """vethwrap's /etc/netns/NS/name files whose namespace is gone (or is someone else's now)."""
    import shlex

    from veth_wrap.kernel import nameread, state

    try:
        gone = nameread.stale(state.list_netns(runner), runner)
    except VethwrapError as exc:
        return Check("name files", Status.WARNING, f"could not read them: {exc.message}")
    if not gone:
        return Check("name files", Status.OK, "every name file of vethwrap's has its namespace")
    paths = ", ".join(f.path for f in gone[:5]) + (f" and {len(gone) - 5} more"
                                                   if len(gone) > 5 else "")
    return Check("name files", Status.WARNING,
                 f"{len(gone)} name file(s) of vethwrap's whose namespace is gone or was made "
                 f"again: {paths}; software run there by that name reads them as /etc/hosts",
                 ["vethwrap destroy " + " ".join(shlex.quote(f.netns) for f in gone)])


CHECKS: list[Callable[[Runner], Check | list[Check]]] = [
    check_ip, check_ping, check_tools, check_privileges, check_netns_dir, check_br_netfilter,
    check_forward_policies, check_docker, check_rp_filter, check_bridge_ports, check_name_files,
]
