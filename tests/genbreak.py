"""Breakages drawn over the kernel's own knobs, for the generated diagnose test.

A breakage is a kind and a few numbers (hypothesis draws them); against a lab they become the
commands that break it and those that undo it. Every command acts inside the lab's own
namespaces (or one the breakage makes with the run's prefix), never in the root namespace.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from genlabs import Lab, run


@dataclass
class Change:
    """What one breakage does, and how to take it back."""

    kind: str
    cmds: list[list[str]] = field(default_factory=list)
    undo: list[list[str]] = field(default_factory=list)
    made: list[str] = field(default_factory=list)  # namespaces it creates (deleted after)


class Picks:
    """Choices from the numbers hypothesis drew (the same numbers give the same choices)."""

    def __init__(self, numbers: list[int]) -> None:
        self.numbers, self.at = list(numbers) or [0], 0

    def one(self, options):
        """One of the options."""
        value = self.numbers[self.at % len(self.numbers)] + self.at // len(self.numbers)
        self.at += 1
        options = list(options)
        return options[value % len(options)]


def _ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def _fam(lab: Lab) -> list[str]:
    return ["-6"] if lab.family == 6 else []


def _host(lab: Lab, address: str) -> str:
    return f"{address}/{32 if lab.family == 4 else 128}"


def _toward(lab: Lab, ns: str, p: Picks) -> str:
    if ns == lab.src:
        return lab.dest
    if ns == lab.dst:
        return lab.back
    return p.one((lab.dest, lab.back))


def _network(lab: Lab, ns: str, address: str) -> str:
    doc = json.loads(run(["ip", "-n", ns, "-j", *_fam(lab), "route", "show"]).stdout or "[]")
    import ipaddress

    wanted = ipaddress.ip_address(address)
    best = None
    for route in doc:
        dst = route.get("dst", "")
        if dst == "default" or "/" not in dst:
            continue
        net = ipaddress.ip_network(dst, strict=False)
        if wanted in net and (best is None or net.prefixlen > best.prefixlen):
            best = net
    return str(best) if best else _host(lab, address)


def route_type(lab: Lab, p: Picks) -> Change:
    ns = p.one(lab.l3)
    to = _toward(lab, ns, p)
    kind = p.one(("blackhole", "unreachable", "prohibit", "throw"))
    dst = p.one((_host(lab, to), _network(lab, ns, to)))
    table = p.one(("main", "main", "100"))
    spec = [kind, dst, "table", table]
    c = Change(f"route {kind}")
    c.cmds.append(["ip", "-n", ns, *_fam(lab), "route", "add", *spec])
    c.undo.append(["ip", "-n", ns, *_fam(lab), "route", "del", *spec])
    if table != "main":
        rule = ["pref", "1000", "lookup", table]
        c.cmds.append(["ip", "-n", ns, *_fam(lab), "rule", "add", *rule])
        c.undo.append(["ip", "-n", ns, *_fam(lab), "rule", "del", *rule])
    return c


def rule_block(lab: Lab, p: Picks) -> Change:
    ns = p.one(lab.l3)
    to = _toward(lab, ns, p)
    action = p.one(("prohibit", "blackhole", "unreachable"))
    pref = str(p.one((5, 90, 32000)))
    match = p.one((["to", _host(lab, to)], ["to", _network(lab, ns, to)],
                   ["from", "all", "to", _host(lab, to)]))
    spec = ["pref", pref, *match, action]
    return Change(f"rule {action}", [["ip", "-n", ns, *_fam(lab), "rule", "add", *spec]],
                  [["ip", "-n", ns, *_fam(lab), "rule", "del", *spec]])


def route_gone(lab: Lab, p: Picks) -> Change:
    """Delete the route a namespace on the path uses toward the other end."""
    ns = p.one(lab.l3)
    to = _toward(lab, ns, p)
    doc = json.loads(run(["ip", "-n", ns, "-j", *_fam(lab), "route", "show"]).stdout or "[]")
    net = _network(lab, ns, to)
    route = next((r for r in doc if r.get("dst") == net), None)
    if route is None:
        return Change("route gone (none)")
    words = [net] + (["via", route["gateway"]] if route.get("gateway") else []) + [
        "dev", route["dev"]]
    extra = (["proto", route["protocol"]] if route.get("protocol") else []) + (
        ["metric", str(route["metric"])] if route.get("metric") else []) + (
        ["src", route["prefsrc"]] if route.get("prefsrc") else [])
    return Change("route deleted",
                  [["ip", "-n", ns, *_fam(lab), "route", "del", *words, *extra]],
                  [["ip", "-n", ns, *_fam(lab), "route", "add", *words, *extra]])


def route_elsewhere(lab: Lab, p: Picks) -> Change:
    """A veth into nowhere, and the route to the other end sent out of it."""
    ns = p.one(lab.l3)
    to = _toward(lab, ns, p)
    dst = p.one((_host(lab, to), _network(lab, ns, to)))
    verb = "add" if dst.endswith(("/32", "/128")) else "replace"
    c = Change("route to a veth into nowhere", [
        ["ip", "-n", ns, "link", "add", "gz0", "type", "veth", "peer", "name", "gz0p"],
        ["ip", "-n", ns, "link", "set", "gz0", "up"], ["ip", "-n", ns, "link", "set", "gz0p", "up"],
        ["ip", "-n", ns, *_fam(lab), "route", verb, dst, "dev", "gz0"]])
    c.undo = [["ip", "-n", ns, "link", "del", "gz0"]]
    return c


def neighbour(lab: Lab, p: Picks) -> Change:
    ns = p.one(lab.l3)
    dev, hop = lab.gateway(ns)
    mac = "02:00:5e:" + ":".join(f"{p.one(range(256)):02x}" for _ in range(3))
    return Change("neighbour wrong MAC", [["ip", "-n", ns, "neigh", "replace", hop, "lladdr", mac,
                                           "dev", dev, "nud", "permanent"]],
                  [["ip", "-n", ns, "neigh", "del", hop, "dev", dev]])


def link_flag(lab: Lab, p: Picks) -> Change:
    devices = lab.ends + lab.ports + ([lab.bridge] if lab.bridge else [])
    ns, dev = p.one(devices)
    flag = p.one(("down", "arp", "mtu") if lab.family == 4 else ("down", "arp"))
    if flag == "down":
        return Change("link down", [["ip", "-n", ns, "link", "set", dev, "down"]],
                      [["ip", "-n", ns, "link", "set", dev, "up"]])
    if flag == "arp":
        return Change("arp off", [["ip", "-n", ns, "link", "set", dev, "arp", "off"]],
                      [["ip", "-n", ns, "link", "set", dev, "arp", "on"]])
    mtu = str(p.one((68, 70, 80)))
    return Change("mtu", [["ip", "-n", ns, "link", "set", dev, "mtu", mtu]],
                  [["ip", "-n", ns, "link", "set", dev, "mtu", "1500"]])


def port_flag(lab: Lab, p: Picks) -> Change:
    if not lab.ports:
        return link_flag(lab, p)
    ns, port = p.one(lab.ports)
    hub, br = lab.bridge
    what = p.one(("state", "isolated", "nomaster", "locked", "flood"))
    base = ["bridge", "-n", ns, "link", "set", "dev", port]
    if what == "state":
        state = str(p.one((0, 1, 2, 4)))
        return Change(f"port state {state}", [[*base, "state", state]], [[*base, "state", "3"]])
    if what == "isolated":
        return Change("ports isolated", [["bridge", "-n", ns, "link", "set", "dev", d, "isolated",
                                          "on"] for _, d in lab.ports],
                      [["bridge", "-n", ns, "link", "set", "dev", d, "isolated", "off"]
                       for _, d in lab.ports])
    if what == "locked":
        return Change("port locked", [[*base, "locked", "on"]], [[*base, "locked", "off"]])
    if what == "flood":  # without learning and flooding, unknown unicast goes nowhere
        return Change("no learning, no flooding", [
            [*base, "learning", "off", "flood", "off", "bcast_flood", "off"],
            ["bridge", "-n", ns, "fdb", "flush", "dev", br]],
            [[*base, "learning", "on", "flood", "on", "bcast_flood", "on"]])
    return Change("port detached", [["ip", "-n", ns, "link", "set", port, "nomaster"]],
                  [["ip", "-n", ns, "link", "set", port, "master", br]])


ECHO_IGNORE = {4: "net.ipv4.icmp_echo_ignore_all", 6: "net.ipv6.icmp.echo_ignore_all"}


def sysctl(lab: Lab, p: Picks) -> Change:
    ns = p.one(lab.l3)
    dev = p.one([d for n, d in lab.ends if n == ns])
    middle = ns not in (lab.src, lab.dst)
    if lab.family == 4:
        keys = [("net.ipv4.conf.all.rp_filter", "1"), (f"net.ipv4.conf.{dev}.arp_ignore",
                                                        p.one(("1", "2", "3", "8"))),
                ("net.ipv4.conf.all.arp_ignore", "8"), (f"net.ipv4.conf.{dev}.arp_filter", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"), (f"net.ipv4.conf.{dev}.accept_local",
                                                           "1")]
        if middle:
            keys += [("net.ipv4.ip_forward", "0"), (f"net.ipv4.conf.{dev}.forwarding", "0")]
    else:
        keys = [(f"net.ipv6.conf.{dev}.disable_ipv6", "1")]
        if middle:
            keys += [("net.ipv6.conf.all.forwarding", "0"), (f"net.ipv6.conf.{dev}.forwarding",
                                                              "0")]
    if ns != lab.src:  # the source ignoring echo requests breaks only the pings to it
        keys.append((ECHO_IGNORE[lab.family], "1"))
    key, value = p.one(keys)
    old = run(_ns(ns, "sysctl", "-n", key)).stdout.strip()
    return Change(f"sysctl {key.split('.', 3)[-1]}={value}",
                  [_ns(ns, "sysctl", "-qw", f"{key}={value}")],
                  [_ns(ns, "sysctl", "-qw", f"{key}={old}")])


_NFT_HOOKS = {"ip": ("prerouting", "input", "forward", "output", "postrouting"),
              "ip6": ("prerouting", "input", "forward", "output", "postrouting"),
              "inet": ("prerouting", "input", "forward", "output", "postrouting"),
              "bridge": ("prerouting", "input", "forward", "output", "postrouting"),
              "netdev": ("ingress", "egress"), "arp": ("input", "output")}


def nft(lab: Lab, p: Picks) -> Change:
    """A table of our own with one base chain: a drop rule, or policy drop."""
    fams = ["inet", "ip" if lab.family == 4 else "ip6", "netdev"] + (
        ["arp"] if lab.family == 4 else []) + (["bridge"] if lab.bridge else [])
    fam = p.one(fams)
    spaces = [lab.bridge[0]] if fam == "bridge" else lab.l3
    ns = p.one(spaces)
    hook = p.one(_NFT_HOOKS[fam])
    prio = "-300" if hook == "prerouting" and fam != "bridge" else "0"
    dev = ""
    if fam == "netdev":
        dev = p.one([d for n, d in lab.ends if n == ns])
        hook_line = f"type filter hook {hook} device {dev} priority 0"
    else:
        hook_line = f"type filter hook {hook} priority {prio}"
    proto = "icmp" if lab.family == 4 else "ipv6-icmp"
    rule = p.one((f"meta l4proto {proto} counter drop", f"meta l4proto {proto} drop",
                  "counter drop", "POLICY")) if fam != "arp" else p.one(("counter drop",
                                                                          "POLICY"))
    if rule.endswith("drop") and "l4proto" in rule and fam == "netdev":
        rule = "counter drop"
    if fam in ("ip", "ip6", "inet") and hook in ("input", "forward", "output") and p.one(
            (0, 1)) and rule != "POLICY":
        rule = rule.replace("drop", "reject")
    policy = " policy drop" if rule == "POLICY" else ""
    body = f"table {fam} gen {{\n chain c {{\n  {hook_line}{policy}\n"
    body += "" if rule == "POLICY" else f"  {rule}\n"
    body += " }\n}\n"
    argv = _ns(ns, "nft", "-f", "-")
    return Change(f"nft {fam} {hook} {'policy drop' if policy else rule.split()[-1]}",
                  [argv + ["<<", body]], [_ns(ns, "nft", "delete", "table", fam, "gen")])


_IPT = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "raw": ("PREROUTING", "OUTPUT"),
        "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}


def iptables(lab: Lab, p: Picks) -> Change:
    legacy = os.path.exists("/proc/net/ip_tables_names")  # never load a module for it
    tool = p.one(("iptables", "iptables-legacy") if legacy else ("iptables",)) \
        if lab.family == 4 else "ip6tables"
    ns = p.one(lab.l3)
    table = p.one(tuple(_IPT))
    chain = p.one(_IPT[table])
    if table == "filter" and p.one((0, 0, 1)):
        return Change(f"{tool} policy DROP {chain}", [_ns(ns, tool, "-P", chain, "DROP")],
                      [_ns(ns, tool, "-P", chain, "ACCEPT")])
    proto = "icmp" if lab.family == 4 else "ipv6-icmp"
    spec = p.one((["-p", proto], ["-d", lab.dest], ["-s", lab.back], []))
    verdict = p.one(("DROP", "REJECT")) if table == "filter" else "DROP"
    full = ["-t", table, chain, *spec, "-j", verdict]
    return Change(f"{tool} {table} {chain} {verdict}",
                  [_ns(ns, tool, "-t", table, "-A", *full[2:])],
                  [_ns(ns, tool, "-t", table, "-D", *full[2:])])


def tc(lab: Lab, p: Picks) -> Change:
    ns, dev = p.one(lab.ends)
    if p.one((0, 1)):
        hook = p.one(("ingress", "egress"))
        return Change(f"tc bpf drop {hook}", [
            ["tc", "-n", ns, "qdisc", "add", "dev", dev, "clsact"],
            ["tc", "-n", ns, "filter", "add", "dev", dev, hook, "bpf", "da", "bytecode",
             "1,6 0 0 2,"]], [["tc", "-n", ns, "qdisc", "del", "dev", dev, "clsact"]])
    return Change("tc pfifo limit 0", [["tc", "-n", ns, "qdisc", "add", "dev", dev, "root",
                                        "pfifo", "limit", "0"]],
                  [["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"]])


def xfrm(lab: Lab, p: Picks) -> Change:
    ns = p.one(lab.l3)
    src, dst = (lab.back, lab.dest) if p.one((0, 1)) else (lab.dest, lab.back)
    direction = p.one(("out", "in", "fwd"))
    sel = ["src", _host(lab, src), "dst", _host(lab, dst), "dir", direction]
    how = p.one((["action", "block"], ["tmpl", "proto", "esp", "mode", "transport"]))
    return Change(f"xfrm {direction} {how[-1]}", [["ip", "-n", ns, "xfrm", "policy", "add",
                                                  *sel, *how]],
                  [["ip", "-n", ns, "xfrm", "policy", "del", *sel]])


def move(lab: Lab, p: Picks, fresh: str) -> Change:
    """A path end moved into a namespace of its own."""
    ns, dev = p.one(lab.ends)
    c = Change("end moved to another namespace", [["ip", "netns", "add", fresh],
                                                  ["ip", "-n", ns, "link", "set", dev, "netns",
                                                   fresh]])
    c.made = [fresh]
    c.undo = [["ip", "-n", fresh, "link", "set", dev, "netns", ns]]
    return c


KINDS = {"route-type": route_type, "rule": rule_block, "route-gone": route_gone,
         "route-elsewhere": route_elsewhere, "neighbour": neighbour, "link": link_flag,
         "port": port_flag, "sysctl": sysctl, "nft": nft, "iptables": iptables, "tc": tc,
         "xfrm": xfrm, "move": move}


def resolve(lab: Lab, kind: str, numbers: list[int], fresh: str) -> Change:
    """The commands of one breakage against a lab."""
    p = Picks(numbers)
    return move(lab, p, fresh) if kind == "move" else KINDS[kind](lab, p)


def apply(cmds: list[list[str]], check: bool = True) -> list[str]:
    """Run commands (a trailing `<<` TEXT gives TEXT as stdin); the errors of those that
    failed."""
    import subprocess

    errors = []
    for cmd in cmds:
        stdin = None
        if "<<" in cmd:
            cmd, stdin = cmd[:cmd.index("<<")], cmd[-1]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if done.returncode:
            errors.append(f"{' '.join(cmd)}: {done.stderr.strip()}")
            if check:
                break
    return errors


def shell(cmd: list[str]) -> str:
    """A command as a shell line (a heredoc for nft's stdin)."""
    from genlabs import quote

    if "<<" in cmd:
        return quote(cmd[:cmd.index("<<")]) + " <<'EOF'\n" + cmd[-1] + "EOF"
    return quote(cmd)
