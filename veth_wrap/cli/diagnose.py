"""The `diagnose` and `doctor` commands."""

from __future__ import annotations

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.errors import ExitStatus

SETTLE = 3.0  # seconds one echo request may wait after --fix changed the path (ARP retries)
STYLE = {"ok": "green", "warning": "yellow", "problem": "bold red"}


def register(app: typer.Typer) -> None:
    """Add `diagnose` and `doctor` to the app."""
    app.command("diagnose")(diagnose_command)
    app.command("doctor")(doctor_command)


@guarded
def diagnose_command(
    namespace: str = typer.Argument(..., help="Namespace to ping from."),
    destination: str = typer.Argument(..., help="Address, or a namespace vethwrap wired."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Walk the path even when the ping works; list checks."),
    ipv6: bool = typer.Option(False, "--ipv6", "-6",
                              help="For a namespace name: take its IPv6 address."),
    fix: bool = typer.Option(False, "--fix", help="Apply the fix; keep it only if it heals."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --fix: print the plan only."),
) -> ExitStatus:
    """Ping DESTINATION from NAMESPACE; if it fails, name the cause and print the fix."""
    from veth_wrap.explain.diagnose import diagnose
    from veth_wrap.model.destination import parse_destination
    from veth_wrap.model.names import check_netns

    check_netns(namespace)
    if dry_run and not fix:
        from veth_wrap.errors import UsageError

        raise UsageError("--dry-run prints the plan of --fix, and --fix was not given",
                         f"run: vethwrap diagnose {namespace} {destination} --fix --dry-run")
    wanted = parse_destination(destination, 6 if ipv6 else None)
    require_root()
    address = wanted.address
    if address is None:
        from veth_wrap.kernel.inventory import destination as resolve

        address = resolve(namespace, wanted)
    result = diagnose(namespace, address, verbose=verbose)
    if fix and not result.reachable:
        return _fix(result, address, json_out, dry_run)
    if json_out:
        from veth_wrap.cli.output import emit_json

        emit_json(result.to_json())
    else:
        _show_diagnosis(result, verbose)
    return ExitStatus.OK if result.reachable else ExitStatus.FAILED


@guarded
def doctor_command(json_out: bool = typer.Option(False, "--json",
                                                 help="Print one JSON object.")) -> ExitStatus:
    """Check the host (changes nothing): tools, privileges, br_netfilter, firewalls."""
    from veth_wrap.explain.doctor import Status, doctor

    checks = doctor()
    problems = sum(c.status == Status.PROBLEM for c in checks)
    if json_out:
        from veth_wrap.cli.output import emit_json

        emit_json({"checks": [c.to_json() for c in checks], "problems": problems,
                   "warnings": sum(c.status == Status.WARNING for c in checks)})
    else:
        _show_doctor(checks)
    return ExitStatus.FAILED if problems else ExitStatus.OK


def _fix(result, address, json_out: bool, dry_run: bool) -> ExitStatus:
    """Apply the diagnosis' fixes as a plan (or print it), keep them only if they heal."""
    from veth_wrap.cli.output import emit_json, emit_script, say
    from veth_wrap.explain.diagnose import diagnose
    from veth_wrap.explain.fixplan import heal, plan
    from veth_wrap.run.transaction import script

    steps = plan(result)
    if dry_run:
        emit_script(script(steps, f"vethwrap diagnose {result.namespace} {result.destination} "
                                 f"--fix: {result.cause.value}"))
        return ExitStatus.OK if steps.steps else ExitStatus.FAILED
    if not steps.steps:
        _show_diagnosis(result, False) if not json_out else emit_json(result.to_json())
        say("nothing applied: no fix is known for this cause")
        return ExitStatus.FAILED
    healing = heal(result, lambda: diagnose(result.namespace, address, settle=SETTLE))
    if json_out:
        emit_json({**result.to_json(), "fix_applied": healing.to_json(),
                   "reachable": healing.healed})
    else:
        _show_diagnosis(result, False)
        from veth_wrap.cli.output import out

        verb = "healed: applied" if healing.healed else "not healed: rolled back"
        out().print(f"{verb} {len(healing.applied)} command(s):", style="bold")
        for line in healing.applied:
            out().print(line, markup=False, highlight=False, soft_wrap=True)
        if not healing.healed:
            say(f"the round trip still fails ({healing.after.summary}); every change was "
                "undone: see the evidence above")
    return ExitStatus.OK if healing.healed else ExitStatus.FAILED


def _show_diagnosis(result, verbose: bool) -> None:
    """A panel with the cause and evidence, then the fix as plain lines to paste."""
    from rich.panel import Panel
    from rich.text import Text

    from veth_wrap.cli.output import out

    ok = result.reachable
    body = Text()
    body.append(("reachable" if ok else f"cause: {result.cause.value}") + "\n",
                style="bold green" if ok else "bold red")
    body.append(result.summary + "\n")
    for line in result.evidence:
        body.append(f"  - {line}\n")
    if verbose and result.checked:
        body.append("checked:\n", style="bold")
        for line in result.checked:
            body.append(f"  - {line}\n")
    title = f"diagnose {result.namespace} -> {result.destination}"
    body.rstrip()
    out().print(Panel(body, title=title, title_align="left"))
    if result.fixes:
        out().print("fix (paste into a root shell):", style="bold")
        for line in result.script:
            out().print(line, markup=False, highlight=False, soft_wrap=True)
    elif not ok:
        out().print("no fix to print: see the evidence above", style="yellow")


def _show_doctor(checks) -> None:
    """One table row per check; fixes below, ready to paste."""
    from rich.text import Text

    from veth_wrap.cli.output import out, table
    from veth_wrap.explain.fixes import shell_line

    tbl = table("vethwrap doctor", ["check", "status", "detail"])
    for check in checks:
        tbl.add_row(Text(check.name), Text(check.status.value, style=STYLE[check.status.value]),
                    Text(check.detail))
    out().print(tbl)
    for check in (c for c in checks if c.fix):
        out().print(f"{check.name}: {shell_line(check.fix)}", markup=False, highlight=False,
                    soft_wrap=True)
