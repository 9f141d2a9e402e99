"""Small labs for the generated diagnose test: built by vethwrap or by hand with plain `ip`,
read back as the path a ping takes, fingerprinted so that a lab can be restored (or rebuilt)
between breakages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

KINDS = ("pair", "bridge", "chain")


def run(argv: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """One command, captured."""
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def cli(*args: str) -> subprocess.CompletedProcess:
    """vethwrap as a user runs it."""
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "veth_wrap", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def quote(argv: list[str]) -> str:
    """A command as a shell line (for the reproducing commands)."""
    import shlex

    return " ".join(shlex.quote(w) for w in argv)


@dataclass
class Lab:
    """A lab and the path of the ping: src pings dest; the reply goes to back from dst."""

    name: str
    kind: str
    family: int
    hand: bool
    spaces: list[str]  # every namespace of the lab
    src: str = ""
    dst: str = ""
    dest: str = ""
    back: str = ""
    l3: list[str] = field(default_factory=list)  # src, routers, dst: in path order
    ends: list[tuple[str, str]] = field(default_factory=list)  # (ns, dev) on the path
    bridge: tuple[str, str] | None = None
    ports: list[tuple[str, str]] = field(default_factory=list)
    off_path: list[str] = field(default_factory=list)  # lab namespaces the ping never crosses
    built_by: list[str] = field(default_factory=list)  # shell lines that build it
    baseline: dict = field(default_factory=dict)

    @property
    def path(self) -> list[str]:
        """The namespaces the requests and replies cross."""
        return [ns for ns in self.spaces if ns not in self.off_path]

    def addr_of(self, ns: str, dev: str) -> str | None:
        """The lab's address (of its family) on one device."""
        doc = json.loads(run(["ip", "-n", ns, "-j", "addr", "show", "dev", dev]).stdout or "[]")
        for item in doc[0].get("addr_info", []) if doc else []:
            if item.get("family") == ("inet" if self.family == 4 else "inet6") \
                    and item.get("scope") == "global":
                return item["local"]
        return None

    def gateway(self, ns: str) -> tuple[str, str | None]:
        """(device, next hop) ns uses toward the other end of the path."""
        to = self.back if ns == self.dst else self.dest
        doc = json.loads(run(["ip", "-n", ns, "-j", "route", "get", to]).stdout or "[{}]")[0]
        return doc.get("dev", ""), doc.get("gateway") or to


def build(names: list[str], kind: str, family: int, hand: bool, subnet: str) -> Lab:
    """Build one lab in the given namespaces (created here) and read its path."""
    lab = Lab(names[0], kind, family, hand, list(names))
    if hand:
        _by_hand(lab, subnet)
    else:
        _by_vethwrap(lab, subnet)
    lab.baseline = fingerprint(lab)
    return lab


def _by_vethwrap(lab: Lab, subnet: str) -> None:
    members = lab.spaces[:3] if lab.kind == "bridge" else lab.spaces
    args = ["create", *members, "-t", lab.kind, "--subnet", subnet, "--json", "-q"]
    if lab.family == 6:
        args.append("-6")
    done = cli(*args)
    if done.returncode:
        raise RuntimeError(f"vethwrap {' '.join(args)}: {done.stderr}")
    layout = json.loads(done.stdout)
    lab.built_by = [f"vethwrap {quote(args)}"]
    if layout.get("hub"):
        lab.spaces.append(layout["hub"])
    lab.src, lab.dst = members[0], members[1] if lab.kind == "bridge" else members[-1]
    lab.off_path = members[2:] if lab.kind == "bridge" else []
    for link in layout["links"]:
        if {link["a"]["namespace"], link["b"]["namespace"]} & set(lab.off_path):
            continue
        for side in ("a", "b"):
            end = link[side]
            if end.get("master"):
                lab.ports.append((end["namespace"], end["interface"]))
                lab.bridge = (end["namespace"], end["master"])
            else:
                lab.ends.append((end["namespace"], end["interface"]))
    _path_addresses(lab)


def _path_addresses(lab: Lab) -> None:
    lab.l3 = [ns for ns in lab.spaces if ns not in lab.off_path
              and (lab.bridge is None or ns != lab.bridge[0])]
    lab.l3 = [lab.src] + [ns for ns in lab.l3 if ns not in (lab.src, lab.dst)] + [lab.dst]
    src_dev = next(dev for ns, dev in lab.ends if ns == lab.src)
    dst_dev = [dev for ns, dev in lab.ends if ns == lab.dst][-1]
    lab.back, lab.dest = lab.addr_of(lab.src, src_dev), lab.addr_of(lab.dst, dst_dev)


def _by_hand(lab: Lab, subnet: str) -> None:
    """The tutorial's way: plain ip commands (a pair, a bridge in a hub, a routed chain)."""
    import ipaddress

    net = ipaddress.ip_network(subnet)
    big = 64 if lab.family == 6 else 24
    nets = list(net.subnets(new_prefix=big)) if net.prefixlen <= big else [net]
    cmds: list[list[str]] = []
    for ns in lab.spaces:
        cmds += [["ip", "netns", "add", ns], ["ip", "-n", ns, "link", "set", "lo", "up"]]
    fam = ["-6"] if lab.family == 6 else []

    def host(n: int, i: int) -> str:
        return f"{nets[n][i]}/{big}"

    def pair(a: str, ia: str, b: str, ib: str) -> None:
        cmds.extend([["ip", "-n", a, "link", "add", ia, "type", "veth", "peer", "name", ib,
                      "netns", b], ["ip", "-n", a, "link", "set", ia, "up"],
                     ["ip", "-n", b, "link", "set", ib, "up"]])

    def address(ns: str, dev: str, cidr: str) -> None:
        cmds.append(["ip", "-n", ns, "addr", "add", cidr, "dev", dev]
                    + (["nodad"] if lab.family == 6 else []))

    a, b = lab.spaces[0], lab.spaces[1]
    if lab.kind == "pair":
        pair(a, "va", b, "vb")
        address(a, "va", host(0, 1))
        address(b, "vb", host(0, 2))
        lab.ends = [(a, "va"), (b, "vb")]
        lab.src, lab.dst = a, b
    elif lab.kind == "bridge":
        hub = lab.spaces[2]
        cmds += [["ip", "-n", hub, "link", "add", "br0", "type", "bridge"],
                 ["ip", "-n", hub, "link", "set", "br0", "up"]]
        for ns, dev, port, i in ((a, "va", "pa", 1), (b, "vb", "pb", 2)):
            pair(ns, dev, hub, port)
            cmds.append(["ip", "-n", hub, "link", "set", port, "master", "br0"])
            address(ns, dev, host(0, i))
        lab.ends, lab.ports = [(a, "va"), (b, "vb")], [(hub, "pa"), (hub, "pb")]
        lab.bridge, lab.src, lab.dst = (hub, "br0"), a, b
    else:
        r = lab.spaces[2]
        pair(a, "va", r, "ra")
        pair(r, "rb", b, "vb")
        address(a, "va", host(0, 1))
        address(r, "ra", host(0, 254))
        address(r, "rb", host(1, 254))
        address(b, "vb", host(1, 2))
        cmds += [["ip", "-n", a, *fam, "route", "add", str(nets[1]), "via", str(nets[0][254])],
                 ["ip", "-n", b, *fam, "route", "add", str(nets[0]), "via", str(nets[1][254])],
                 ["ip", "netns", "exec", r, "sysctl", "-qw",
                  "net.ipv4.ip_forward=1" if lab.family == 4 else "net.ipv6.conf.all.forwarding=1"]]
        lab.ends = [(a, "va"), (r, "ra"), (r, "rb"), (b, "vb")]
        lab.src, lab.dst = a, b
    for cmd in cmds:
        run(cmd)
    lab.built_by = [quote(c) for c in cmds]
    _path_addresses(lab)


def destroy(lab: Lab) -> None:
    """Delete the lab's namespaces by exact name."""
    for ns in lab.spaces:
        run(["ip", "netns", "del", ns], check=False)
    lab.spaces = [ns for ns in lab.spaces if not ns.startswith("vethwrap-")]


_COUNTERS = re.compile(r"counter packets \d+ bytes \d+|\[\d+:\d+\]|_timer +[\d.]+"
                       r"|used \d+/\d+/\d+|probes \d+")
_SYSCTLS = r"^net\.(ipv4\.(conf\.|ip_forward|icmp_echo)|ipv6\.(conf\.|icmp\.echo))"
_BATCH = {4: "link\naddr\nroute show table all\nrule\nneigh show nud permanent\n"
             "xfrm policy\nxfrm state\n", 6: "route show table all\nrule\n"}
_READS = (["tc", "qdisc"], ["nft", "list", "ruleset"], ["iptables-save"], ["ip6tables-save"],
          ["iptables-legacy-save"], ["bridge", "-d", "link"], ["sysctl", "-a", "-r", _SYSCTLS])


def fingerprint(lab: Lab) -> dict:
    """What a breakage may change, per namespace (counters and lifetimes left out)."""
    found = {}
    for ns in lab.spaces:
        texts = [subprocess.run(["ip", "-d", f"-{v}", "-n", ns, "-batch", "-"], input=_BATCH[v],
                                capture_output=True, text=True, check=False).stdout
                 for v in (4, 6)]
        texts += [run(["ip", "netns", "exec", ns, *argv], check=False).stdout for argv in _READS]
        found[ns] = ["\n".join(ln for ln in _COUNTERS.sub("", text).splitlines()
                               if not ln.startswith("#") and "_lft" not in ln
                               and "fe80:" not in ln) for text in texts]  # link-locals come late
    return found


def differs(lab: Lab) -> list[str]:
    """The namespaces whose state is not the lab's baseline."""
    now = fingerprint(lab)
    return [ns for ns in lab.baseline if now.get(ns) != lab.baseline[ns]]


def ping(ns: str, dest: str, tries: int = 1, wait: str = "1") -> bool:
    """True when dest answers from ns (each try: two echo requests)."""
    argv = ["ip", "netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", wait, dest]
    return any(run(argv, check=False).returncode == 0 for _ in range(tries))


def both_ways(lab: Lab, tries: int = 2) -> bool:
    """Requests from src to dest, and from dst back to src's address."""
    return ping(lab.src, lab.dest, tries) and ping(lab.dst, lab.back, tries)
