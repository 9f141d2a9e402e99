"""A lab file's links: their ends, their addresses (given, or /30 blocks of the pool), options."""

from __future__ import annotations

import ipaddress
from typing import Optional

from veth_wrap.errors import UsageError
from veth_wrap.model import names
from veth_wrap.model.labparts import Where
from veth_wrap.model.names import Role
from veth_wrap.model.topology import DEFAULT_SUBNET, End, Link

LINK_OPTION_KEYS = ("delay", "jitter", "loss", "rate", "mtu")
LINK_KEYS = {"between", "interfaces", "addresses", "direction", *LINK_OPTION_KEYS}


class LinkParts:
    """The link half of the lab file's builder (a mixin: the builder holds doc, ns, used)."""

    def _links(self, value) -> None:
        pending = []
        for i, item in enumerate(self._list(value, ("links",), "links")):
            where = ("links", i)
            if isinstance(item, list):
                item = {"between": item}
            if not isinstance(item, dict):
                self.doc.fail(where, "a link is [a, b] or a mapping with between")
                continue
            for key in sorted(set(item) - LINK_KEYS):
                self.doc.fail(where + (key,), "unknown key",
                              f"expected {', '.join(sorted(LINK_KEYS))}")
            ends = self._two(item.get("between"), where + ("between",), "namespaces")
            if ends is None:
                continue
            a, b = (self._member(ns, where + ("between", k)) for k, ns in enumerate(ends))
            if a and b and a == b:
                self.doc.fail(where + ("between",), "a link joins two different namespaces")
            elif a and b:
                pending.append((where, item, a, b))
        explicit = [self._explicit(where, item) for where, item, _, _ in pending]
        auto = self._link_subnets(sum(1 for e in explicit if e is None))
        for (where, item, a, b), addrs in zip(pending, explicit):
            self.links.append(self._link(where, item, a, b, addrs or next(auto, ((), ()))))

    def _two(self, value, where: Where, what: str) -> Optional[list]:
        if not isinstance(value, list) or len(value) != 2:
            self.doc.fail(where, f"expected two {what}, e.g. [a, b]")
            return None
        return value

    def _explicit(self, where: Where, item: dict) -> Optional[tuple]:
        """The link's own addresses (None: take them from the subnet; ['-', '-']: none)."""
        value = item.get("addresses")
        if value is None:
            return None
        pair = self._two(value, where + ("addresses",), "addresses (or none: [null, null])")
        if pair is None:
            return ((), ())
        found = tuple(tuple(self._address(one, where + ("addresses", k), None)
                            for one in (addr if isinstance(addr, list) else [addr]))
                      if addr is not None else () for k, addr in enumerate(pair))
        ends = [ipaddress.ip_interface(a[0]) for a in found if a and a[0]]
        if len(ends) == 2 and ends[1].ip not in ends[0].network \
                and ends[0].ip not in ends[1].network:
            self.doc.fail(where + ("addresses",), f"{ends[0]} and {ends[1]} share no subnet",
                          "give both ends addresses of one subnet")
        return found

    def _link_subnets(self, count: int):
        """/30 (or /126) blocks of the lab subnet for links without addresses, skipping used."""
        if count == 0:
            return iter(())
        net = getattr(self, "pool", None) or self.subnet or ipaddress.ip_network(DEFAULT_SUBNET)
        taken = list(self._bridge_nets) + [g for g in self.given if g.prefixlen < 30]
        found = []
        for block in net.subnets(new_prefix=30 if net.version == 4 else 126):
            hosts = [ipaddress.ip_address(int(block.network_address) + k) for k in (1, 2)]
            if any(block.overlaps(t) for t in taken) or any(str(h) in self.used for h in hosts):
                continue
            self.used.update(str(h) for h in hosts)
            found.append(tuple((f"{h}/{block.prefixlen}",) for h in hosts))
            if len(found) == count:
                return iter(found)
        self.doc.fail(("subnet",), f"subnet {net} has no room for {count} more links",
                      "give a larger subnet, e.g. 10.0.0.0/16")
        return iter(found)

    def _link(self, where: Where, item: dict, a: str, b: str, addrs: tuple) -> Link:
        ifnames = [names.p2p_ifname(self.ns[b]), names.p2p_ifname(self.ns[a])]
        given = item.get("interfaces")
        if given is not None and self._two(given, where + ("interfaces",), "interface names"):
            for k, name in enumerate(given):
                if name is not None and self.ifname_ok(where + ("interfaces", k), str(name)):
                    ifnames[k] = str(name)
        ends = []
        for k, ns in enumerate((a, b)):
            self.places[(self.ns[ns], ifnames[k])] = where
            ends.append(End(self.ns[ns], ifnames[k], Role.END, tuple(x for x in addrs[k] if x)))
        return self._with_options(where, item, Link(*ends))

    def _with_options(self, where: Where, item: dict, link: Link) -> Link:
        """A link's delay, jitter, loss, rate and mtu, on both ends or (direction) on a only."""
        from veth_wrap.model import linkopts as netem
        from veth_wrap.model import shapes

        given = {key: item[key] for key in LINK_OPTION_KEYS if key in item}
        direction = item.get("direction", "both")
        if direction not in ("both", "a-to-b"):
            self.doc.fail(where + ("direction",), f"{direction!r} is not a direction",
                          "use both (the default) or a-to-b")
        if not given:
            return link
        if "mtu" in given and (isinstance(given["mtu"], bool) or not isinstance(given["mtu"], int)):
            self.doc.fail(where + ("mtu",), "the MTU is a whole number", "e.g. mtu: 9000")
            return link
        words = {k: v if k == "mtu" else str(v) for k, v in given.items()}
        try:
            opts = netem.link_opts(**words)
        except UsageError as exc:
            key = next((k for k in given if exc.message.startswith(f"--{k}")), sorted(given)[0])
            self.doc.fail(where + (key,), exc.message.replace("--", ""), exc.hint)
            return link
        if direction not in ("both", "a-to-b"):
            return link
        return shapes.link_with_opts(link, opts, direction) if opts else link

