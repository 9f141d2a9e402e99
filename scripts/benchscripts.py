"""The bash yardsticks the benchmark writes: lean (one `ip` per step) and the floor (batches).

Every script keeps its bridge in a namespace of its own, as vethwrap does, so the root
namespace never changes; the hub is `<first member minus its last character>h`.
"""

from __future__ import annotations


def address(i: int, prefix: bool = True) -> str:
    """Host i+1 of 10.0.0.0/22 (enough for 1,000 namespaces)."""
    host = i + 1
    text = f"10.0.{host // 256}.{host % 256}"
    return f"{text}/22" if prefix else text


def hub_of(members: list[str]) -> str:
    """The hub namespace a script uses for members."""
    return members[0][:-1] + "h"


def _ping(source: str, target: int) -> str:
    return f"ip netns exec {source} ping -c1 -W5 -q {address(target, False)} >/dev/null"


def lean_pair(members: list[str]) -> str:
    """Two namespaces, one veth, both ways pinged: one ip per step, `ip -n NS`."""
    a, b = members
    return "\n".join([
        "set -e", f"ip netns add {a}", f"ip netns add {b}",
        f"ip -n {a} link add eth0 type veth peer name eth0 netns {b}",
        f"ip -n {a} addr add {address(0)} dev eth0", f"ip -n {b} addr add {address(1)} dev eth0",
        f"ip -n {a} link set eth0 up", f"ip -n {b} link set eth0 up",
        _ping(a, 1), _ping(b, 0), f"ip netns del {a}", f"ip netns del {b}"]) + "\n"


def lean_bridge(members: list[str], both_ways: bool = False) -> str:
    """A bridge in a hub, one ip per step; first pings last (and back, if both_ways)."""
    hub, n = hub_of(members), len(members)
    lines = ["set -e", f"ip netns add {hub}", f"ip -n {hub} link add br0 up type bridge"]
    for i, ns in enumerate(members):
        lines += [f"ip netns add {ns}",
                  f"ip -n {ns} link add eth0 type veth peer name p{i} netns {hub}",
                  f"ip -n {ns} addr add {address(i)} dev eth0",
                  f"ip -n {ns} link set eth0 up",
                  f"ip -n {hub} link set p{i} master br0 up"]
    lines.append(_ping(members[0], n - 1))
    if both_ways:
        lines.append(_ping(members[-1], 0))
    lines += [f"ip netns del {ns}" for ns in members + [hub]]
    return "\n".join(lines) + "\n"


def tutorial_bridge(members: list[str]) -> str:
    """The tutorial's way: veth made in one place, moved with `link set netns`, netns exec."""
    hub, n = hub_of(members), len(members)
    lines = ["set -e", f"ip netns add {hub}",
             f"ip netns exec {hub} ip link add br0 type bridge",
             f"ip netns exec {hub} ip link set br0 up"]
    for i, ns in enumerate(members):
        lines += [f"ip netns add {ns}",
                  f"ip netns exec {hub} ip link add veth{i} type veth peer name p{i}",
                  f"ip netns exec {hub} ip link set veth{i} netns {ns}",
                  f"ip netns exec {ns} ip addr add {address(i)} dev veth{i}",
                  f"ip netns exec {ns} ip link set veth{i} up",
                  f"ip netns exec {ns} ip link set lo up",
                  f"ip netns exec {hub} ip link set p{i} master br0",
                  f"ip netns exec {hub} ip link set p{i} up"]
    lines.append(_ping(members[0], n - 1))
    lines += [f"ip netns del {ns}" for ns in members + [hub]]
    return "\n".join(lines) + "\n"


def _batch(lines: list[str], netns: str = "") -> list[str]:
    where = f"-n {netns} " if netns else ""
    return [f"ip {where}-batch - <<'EOF'", *lines, "EOF"]


def floor_build(members: list[str]) -> list[str]:
    """The bridge in as few processes as iproute2 allows: three batches and a fork a member.

    The member ends are made up from the hub (a veth's first end may come up as it is
    made); only the address needs a process inside each member.
    """
    hub = hub_of(members)
    out = _batch([f"netns add {ns}" for ns in [hub] + members])
    inside = ["link add br0 type bridge", "link set br0 up"]
    for i, ns in enumerate(members):
        inside += [f"link add eth0 netns {ns} up type veth peer name p{i}",
                   f"link set p{i} master br0 up"]
    out += _batch(inside, hub)
    out += _batch([f"netns exec {ns} ip addr add {address(i)} dev eth0"
                   for i, ns in enumerate(members)])
    return out


def floor_destroy(members: list[str]) -> list[str]:
    """Every namespace of the floor's lab deleted by one batch."""
    return _batch([f"netns del {ns}" for ns in members + [hub_of(members)]])


def floor(members: list[str]) -> str:
    """Build, ping first to last, delete: the floor for a bridge of len(members)."""
    return "\n".join(["set -e", *floor_build(members), _ping(members[0], len(members) - 1),
                      *floor_destroy(members)]) + "\n"


def softnet_drops() -> int:
    """Packets the kernel's per-CPU backlogs dropped since boot (softnet_stat column 2)."""
    with open("/proc/net/softnet_stat") as stat:
        return sum(int(line.split()[1], 16) for line in stat if line.strip())


def softirq_ticks() -> int:
    """Clock ticks every CPU spent in softirq since boot (/proc/stat): where packets cost."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[7])
