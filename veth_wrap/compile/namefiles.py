"""Lab names that resolve: the /etc/netns/NS/name files of a lab, as plan steps (no I/O).

`ip netns exec NS` binds /etc/netns/NS/hosts over /etc/hosts, so software run in a lab finds
the other namespaces by name. Each file's first line marks it as vethwrap's; a file without
that line is someone else's and is never touched.
"""

from __future__ import annotations

from typing import Iterable, Optional

from veth_wrap.errors import LinkRefused
from veth_wrap.model.names import Mark
from veth_wrap.model.procfacts import HOSTS_ROLE, NETNS_ETC, NameFile, hosts_path
from veth_wrap.model.topology import Lab
from veth_wrap.steps import Kind, Op, Plan, Step

FOREIGN = "was not written by vethwrap"  # the note create and up show, whatever else is quiet
LOCALHOST = ("127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback")


def header(lab: Lab) -> str:
    """The marking first line."""
    mark = Mark(lab.name, HOSTS_ROLE, lab.kind.value).text()
    return f"# {mark}: the names of lab {lab.name}, written by vethwrap; " \
           "'vethwrap destroy' removes it"


def contents(lab: Lab) -> dict[str, str]:
    """Each namespace's name file: localhost, then every member at the address it sees.

    Where namespaces share a link or bridge that is the address on it; otherwise the
    member's first address. Namespaces that see every member alike share one string.
    """
    base = {(ns, v): lab.address_of(ns, None, v) for ns in lab.members for v in lab.versions()}
    shared = _text(lab, base)
    neighbours = _neighbours(lab)
    found = {}
    for ns in lab.namespaces():
        seen = {(other, v): lab.address_of(other, ns, v) for other in neighbours.get(ns, ())
                if other in lab.members for v in lab.versions()}
        changed = {key: addr for key, addr in seen.items() if addr and addr != base[key]}
        found[ns] = _text(lab, {**base, **changed}) if changed else shared
    return found


def _neighbours(lab: Lab) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for link in lab.links:
        if link.a.netns and link.b.netns:
            found.setdefault(link.a.netns, set()).add(link.b.netns)
            found.setdefault(link.b.netns, set()).add(link.a.netns)
    return found


def _text(lab: Lab, addresses: dict[tuple[str, int], Optional[str]]) -> str:
    lines = [header(lab), *LOCALHOST]
    names = aliases(lab)
    for version in lab.versions():
        lines += [f"{addresses[(ns, version)]}\t{ns}{names.get(ns, '')}" for ns in lab.members
                  if addresses.get((ns, version))]
    return "\n".join(lines) + "\n"


def aliases(lab: Lab) -> dict[str, str]:
    """{member: "\tSHORT"} for a lab whose names got a prefix (the fixture, lab files built
    with one): the names the test or file wrote resolve too. A short name that is another
    member's whole name is left out."""
    prefix = lab.extra.get("prefix", "")
    if not prefix:
        return {}
    taken = set(lab.namespaces())
    return {ns: f"\t{ns[len(prefix):]}" for ns in lab.members
            if ns.startswith(prefix) and ns[len(prefix):] and ns[len(prefix):] not in taken}


def write_plan(lab: Lab, found: dict[str, NameFile]) -> Plan:
    """mkdir and tee steps for the files that differ from what they should say.

    A file vethwrap did not write is left alone, with a note; a symbolic link where a file or
    folder goes is refused (LinkRefused), before anything changes. Rollback removes files and
    folders that the plan created. The steps need no kernel state and change none, so the
    schedule may run them while steps that do run.
    """
    linked = next((f for f in found.values() if f.link), None)
    if linked:  # someone else's link where a file of the lab goes: write nothing through it
        raise LinkRefused(linked.link)
    plan = Plan()
    wanted = contents(lab)
    todo: dict[str, list[str]] = {}
    for ns, text in wanted.items():
        have = found.get(ns, NameFile(ns))
        if have.exists and not have.ours:
            plan.notes.append(f"{have.path} {FOREIGN}: left as it is, so lab "
                              f"names do not resolve in {ns} (move it away and run again)")
        elif have.content != text:
            todo.setdefault(text, []).append(ns)
    if not todo:
        return plan
    folders = [f"{NETNS_ETC}/{ns}" for ns in wanted
               if any(ns in group for group in todo.values()) and not found.get(
                   ns, NameFile(ns)).dir_exists]
    if folders:
        plan.steps.append(Step((Op(Kind.MAKE_DIRS, ("-p", "--", *folders),
                                   ("--ignore-fail-on-non-empty", "--", *folders),
                                   undo_program="rmdir", undo_kind=Kind.REMOVE_DIRS),),
                               program="mkdir", comment="folders for the lab's name files"))
    for text, group in todo.items():
        files = [hosts_path(ns) for ns in group]
        new = [hosts_path(ns) for ns in group if not found.get(ns, NameFile(ns)).exists]
        undo = ("-rf", "--", *new) if new else ()
        plan.steps.append(Step((Op(Kind.WRITE_NAME_FILE, ("--", *files), undo,
                                   undo_program="rm", undo_kind=Kind.REMOVE_FILES),),
                               program="tee", comment=f"lab names for {_span(group)}",
                               input=text))
    return plan


def _span(group: list[str]) -> str:
    return group[0] if len(group) == 1 else f"{group[0]} to {group[-1]} ({len(group)})"


def removal_steps(files: Iterable[NameFile], logs: Iterable[str] = (),
                  comment: str = "the lab's name files and service logs") -> list[Step]:
    """Remove vethwrap's name files (and their folders once empty) and service logs."""
    ours = [f for f in dict((f.netns, f) for f in files).values() if f.ours]
    paths = [f.path for f in ours] + list(dict.fromkeys(logs))
    steps = []
    if paths:
        steps.append(Step((Op(Kind.REMOVE_FILES, ("-rf", "--", *paths)),), program="rm",
                          comment=comment))
    empty = [f"{NETNS_ETC}/{f.netns}" for f in ours if not f.others]
    if empty:
        steps.append(Step((Op(Kind.REMOVE_DIRS, ("--ignore-fail-on-non-empty", "--", *empty)),),
                          program="rmdir",
                          comment="their folders, when nothing else is in them"))
    return steps


def stale_steps(files: Iterable[NameFile]) -> list[Step]:
    """Remove the name files of namespaces that are gone (or were made again by others)."""
    return removal_steps(files, comment="name files whose namespace is gone")
