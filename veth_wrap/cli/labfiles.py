"""CLI commands for lab files and pictures: up, down, validate and graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.cli.common import lab_option
from veth_wrap.errors import UsageError
from veth_wrap.model.topology import Lab

FILE = typer.Option(..., "--file", "-f", help="The YAML lab file; - reads it from stdin.")
PREFIX = typer.Option("", "--prefix", help="Put this before the lab and namespace names.")
DRY_RUN = typer.Option(False, "--dry-run", "-n", help="Print the commands instead of running them.")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")
SHOWN_PROBLEMS = 20


def register(app: typer.Typer) -> None:
    """Attach up, down, validate and graph."""
    app.command()(up)
    app.command()(down)
    app.command()(validate)
    app.command()(graph)


HOST = typer.Option(None, "--host", help="A lab over several hosts: build this host's share.")
ALL_HOSTS = typer.Option(False, "--all-hosts", help="Run it on every host of the file over ssh.")


IGNORE = typer.Option(False, "--ignore-unsupported",
                      help="Build an imported file (containerlab, Kathara) without what a "
                      "namespace cannot honour, instead of refusing it.")


@dataclass(frozen=True)
class LabFile:
    """A lab file read once (bounded; `-` is stdin): its text, sent to hosts, and its Lab."""

    path: Path
    text: str
    lab: Lab


def load(path: Path, prefix: str = "", ignore_unsupported: bool = False) -> Lab:
    """The file's Lab (`-` reads stdin); with several problems, each goes to stderr first.

    Besides vethwrap's lab files: containerlab's *.clab.yml and Kathara's lab.conf.
    """
    return read(path, prefix, ignore_unsupported).lab


def read(path: Path, prefix: str = "", ignore_unsupported: bool = False) -> LabFile:
    """The file's text and its Lab, as load() parses it."""
    from veth_wrap.cli.output import say
    from veth_wrap.model import foreign, labfile

    text = labfile.read_text(path)
    try:
        lab = foreign.parse(text, labfile.source_name(path), prefix, ignore_unsupported)
    except labfile.LabFileError as exc:
        if len(exc.problems) > 1:
            for problem in exc.problems[:SHOWN_PROBLEMS]:
                say(problem)
            if len(exc.problems) > SHOWN_PROBLEMS:  # thousands of lines would bury the first
                say(f"... and {len(exc.problems) - SHOWN_PROBLEMS} more (all of them: "
                    f"vethwrap validate --json -f {path})")
        raise
    for note in lab.extra.get("notes", []):
        say(note)
    return LabFile(path, text, lab)


@guarded
def up(file: Path = FILE, prefix: str = PREFIX, dry_run: bool = DRY_RUN,
       no_verify: bool = typer.Option(False, "--no-verify", help="Skip the reachability check."),
       json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
       host: Optional[str] = HOST, all_hosts: bool = ALL_HOSTS,
       ignore_unsupported: bool = IGNORE) -> None:
    """Build the lab a file describes, or bring a built one in line with an edited file.

    The file may also be a containerlab topology (*.clab.yml) or a Kathara lab.conf.
    """
    from veth_wrap import api
    from veth_wrap.cli.output import emit_script, say
    from veth_wrap.model.hosts import of_lab
    from veth_wrap.run.transaction import script

    given = read(file, prefix, ignore_unsupported)
    lab = given.lab
    if of_lab(lab) is not None or host or all_hosts:
        from veth_wrap.cli import hosts

        hosts.up(lab, given.text, file, host, all_hosts, prefix, dry_run, no_verify, json_out)
        return
    if dry_run:
        from veth_wrap.model import labservices

        steps = api.update_plan(lab)
        started = labservices.commands(lab)
        emit_script(script(steps, f"vethwrap up: lab {lab.name} from {_shown(file)}")
                    + _exec_lines(lab)
                    + (["# then its services, in order"] + started if started else []))
        for note in steps.warnings + steps.notes:
            say(note)
        return
    require_root()
    built = api.update(lab, check=not no_verify)
    from veth_wrap.cli.services import start_file_services
    from veth_wrap.cli.views import print_made

    unchanged = f"lab {lab.name} is already as {_shown(file)} describes; nothing changed"
    if json_out:  # one document: the lab, then the services as they started
        print_made(built, True, unchanged, services=start_file_services(lab))
        return
    print_made(built, False, unchanged)
    start_file_services(lab)


def _exec_lines(lab) -> list[str]:
    """The dry run's lines for the commands an imported file runs in its new namespaces."""
    import shlex

    execs = lab.extra.get("exec") or []
    head = ["# then, in each namespace this run makes, its commands from the file"]
    return (head + [f"ip netns exec {shlex.quote(ns)} {shlex.join(argv)}" for ns, argv in execs]
            if execs else [])


@guarded
def down(file: Path = FILE, prefix: str = PREFIX, dry_run: bool = DRY_RUN,
         json_out: bool = JSON, host: Optional[str] = HOST, all_hosts: bool = ALL_HOSTS,
         grace: float = typer.Option(2.0, "--grace", min=0, max=3600,
                                     help="Seconds between SIGTERM and SIGKILL inside.")) -> None:
    """Remove the lab a file names; works from the kernel (same as destroy --lab NAME)."""
    from veth_wrap import api
    from veth_wrap.cli.output import emit_script
    from veth_wrap.cli.views import print_removed
    from veth_wrap.model import foreign
    from veth_wrap.run.transaction import script

    if host or all_hosts or str(file) == "-":  # these need the hosts: the whole file
        from veth_wrap.cli import hosts

        given = read(file, prefix)
        hosts.down(given.lab, given.text, host, all_hosts, prefix, dry_run, json_out)
        return
    name = foreign.lab_name(file, prefix)
    require_root()
    if dry_run:
        steps = api.destroy_targets(lab=name)
        emit_script(script(steps, f"vethwrap down: lab {name}"))
    else:
        steps = api.destroy(lab=name, grace=grace)
    print_removed(steps, dry_run, json_out, f"lab {name}", lab=name)


@guarded
def validate(file: Path = FILE, prefix: str = PREFIX, json_out: bool = JSON,
             ignore_unsupported: bool = IGNORE) -> None:
    """Check a lab file without touching the kernel; report every problem at once."""
    from veth_wrap.cli.output import emit_json, line
    from veth_wrap.model import labfile

    try:
        lab = load(file, prefix, ignore_unsupported)
    except labfile.LabFileError as exc:
        if json_out:
            emit_json({"file": str(file), "valid": False, "problems": list(exc.problems)})
        raise
    if json_out:
        emit_json({"file": str(file), "valid": True, "lab": lab.name,
                   "namespaces": list(lab.members), "links": len(lab.links),
                   "bridges": len(lab.bridges), "routes": len(lab.routes), "problems": []})
        return
    counts = ", ".join(_count(n, word) for n, word in (
        (len(lab.members), "namespace"), (len(lab.links), "link"),
        (len(lab.bridges), "bridge"), (len(lab.routes), "route")))
    line(f"{_shown(file)}: lab {lab.name} is valid: {counts}")


def _shown(file: Path) -> str:
    """The file as messages name it; '-' is stdin."""
    return "<stdin>" if str(file) == "-" else str(file)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@guarded
def graph(lab: Optional[str] = lab_option(),
          file: Optional[Path] = typer.Option(None, "--file", "-f", help="A YAML lab file."),
          prefix: str = PREFIX,
          fmt: str = typer.Option("text", "--format", help="text, dot or mermaid.")) -> None:
    """Draw a lab: boxes and lines in the terminal, or Graphviz dot, or Mermaid."""
    import sys

    from veth_wrap.model import drawing

    if (lab is None) == (file is None):
        raise UsageError("give one of --lab NAME or -f FILE", "e.g. vethwrap graph -f lab.yaml")
    if fmt not in drawing.FORMATS:
        raise UsageError(f"--format {fmt!r} is not known", "use text, dot or mermaid")
    if file is not None:
        found = load(file, prefix)
    else:
        require_root()
        from veth_wrap.kernel.inventory import lab_from_kernel

        found = lab_from_kernel(prefix + lab)
    drawn = drawing.draw(found, fmt)
    sys.stdout.write(drawn if drawn.endswith("\n") else drawn + "\n")
