#!/usr/bin/env python3
"""The benchmark's Mininet half, run with the interpreter Debian's mininet is for.

`cycle N PREFIX`: N hosts on one LinuxBridge switch (no controller) started, the first
pinging the last once, stopped. `pingall N PREFIX`: the same network's pingAll(), timed
alone. Prints one JSON object. Mininet makes its switch and its ports in the root namespace;
their names start with PREFIX, and net.stop() removes them (and its hosts' processes).
"""

from __future__ import annotations

import json
import sys
import time

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo


class Star(Topo):
    """n hosts on one switch, every name under a prefix."""

    def build(self, n: int = 2, prefix: str = "mn") -> None:  # noqa: D102 (Topo's hook)
        switch = self.addSwitch(f"{prefix}s1")
        for i in range(n):
            self.addLink(self.addHost(f"{prefix}h{i + 1}"), switch)


def main() -> int:
    """Run one measurement, print JSON."""
    what, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    setLogLevel("error")
    start = time.perf_counter()
    net = Mininet(topo=Star(n=n, prefix=prefix), switch=LinuxBridge, controller=None,
                  autoSetMacs=True, waitConnected=False)
    result = {}
    try:
        net.start()
        first, last = net.hosts[0], net.hosts[-1]
        if what == "cycle":
            first.cmd(f"ping -c1 -W1 -q {last.IP()}")
        else:
            begun = time.perf_counter()
            result["loss"] = net.pingAll(timeout=1)
            result["pingall"] = time.perf_counter() - begun
    finally:
        net.stop()
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
