"""Lab files' `services:` section: per namespace, the services `up` starts in order.

    services:
      web: [{name: nginx, argv: [nginx, -c, /srv/nginx.conf], wait_port: 80}]
      dns: [{argv: [dnsmasq, --no-resolv], wait_port: 53/udp, env: {TZ: UTC}}]

Problems are recorded on the lab file's document, with their lines, like every other one.
"""

from __future__ import annotations

import os
import shlex

from veth_wrap.errors import UsageError
from veth_wrap.model.servicespec import ServiceSpec, check_env, check_service_name
from veth_wrap.model.servicespec import parse_wait_port as _port

KEY = "services"
ITEM_KEYS = {"name", "argv", "wait_port", "wait_cmd", "env"}
EXAMPLE = "e.g. services: {web: [{name: nginx, argv: [nginx], wait_port: 80}]}"


def of_lab(lab) -> tuple[tuple[str, ServiceSpec], ...]:
    """The lab's services as (namespace, spec), in file order."""
    return lab.extra.get(KEY, ())


def read(builder, data: dict) -> tuple[tuple[str, ServiceSpec], ...]:
    """The services section (empty without one); problems go to builder.doc."""
    value = data.get(KEY)
    if value is None:
        return ()
    if not isinstance(value, dict):
        builder.doc.fail((KEY,), "expected a mapping of namespace: [services]", EXAMPLE)
        return ()
    found = []
    for netns, items in value.items():
        where = (KEY, netns)
        if netns not in builder.ns:
            builder.doc.fail(where, f"{netns!r} is not one of the lab's namespaces",
                             "list it under namespaces first")
            continue
        seen: set[str] = set()
        for i, item in enumerate(builder._list(items, where, "services")):
            spec = _spec(builder, (*where, i), item)
            if spec and spec.name in seen:
                builder.doc.fail((*where, i, "name"), f"service {spec.name} is given twice "
                                 f"in {netns}", "give each its own name")
            elif spec:
                seen.add(spec.name)
                found.append((builder.ns[netns], spec))
    return tuple(found)


def _spec(builder, where: tuple, item) -> ServiceSpec | None:
    if not isinstance(item, dict):
        builder.doc.fail(where, "expected {name, argv, wait_port, env}", EXAMPLE)
        return None
    for key in sorted(set(item) - ITEM_KEYS):
        builder.doc.fail((*where, key), "unknown key",
                         f"expected one of {', '.join(sorted(ITEM_KEYS))}")
    argv = _words(builder, (*where, "argv"), item.get("argv"), required=True)
    probe = _words(builder, (*where, "wait_cmd"), item.get("wait_cmd"))
    if argv is None or probe is None:
        return None
    try:
        name = check_service_name(str(item.get("name") or os.path.basename(argv[0])))
        env = item.get("env") or {}
        if not isinstance(env, dict):
            raise UsageError("env is not a mapping of NAME: value", "e.g. env: {PORT: '80'}")
        env = check_env({str(k): str(v) for k, v in env.items()})
        port = _port(str(item["wait_port"])) if item.get("wait_port") is not None else None
    except UsageError as exc:
        builder.doc.fail(where, exc.message, exc.hint)
        return None
    return ServiceSpec(name, argv, env, port, probe)


def _words(builder, where: tuple, value, required: bool = False):
    """A list of words (argv: no shell string); None after recording a problem."""
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value or not all(
            isinstance(w, (str, int, float)) and not isinstance(w, bool) for w in value):
        builder.doc.fail(where, "expected a list of words", "e.g. argv: [nginx, -c, site.conf]")
        return None
    return tuple(str(w) for w in value)


def commands(lab) -> list[str]:
    """The `vethwrap run` lines that start the lab's services, in order (the dry run)."""
    lines = []
    for netns, spec in of_lab(lab):
        words = ["vethwrap", "run", netns, "--name", spec.name]
        words += ["--wait-port", str(spec.wait_port)] if spec.wait_port else []
        words += ["--wait-cmd", shlex.join(spec.wait_cmd)] if spec.wait_cmd else []
        for key, value in spec.env.items():
            words += ["--env", f"{key}={value}"]
        lines.append(shlex.join([*words, "--", *spec.argv]))
    return lines
