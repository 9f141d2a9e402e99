"""The command line: typer commands that parse arguments and call the library."""

from __future__ import annotations

import os
import sys
from typing import Callable

import typer

from veth_wrap.cli import helpformat
from veth_wrap.errors import ExitStatus, PreflightError, VethwrapError

app = typer.Typer(
    add_completion=True,
    help="Build, verify, explain and tear down network-namespace labs: veth pairs, bridges, "
    "routed chains.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # click's plain help: typer's rich panels import rich's markdown, pygments and more, which
    # would make `--help` several times slower than everything else it does
    rich_markup_mode=None,
    cls=helpformat.Group,
)

_debug = {"on": False}
QUIET_HELP = "Say nothing on stderr but errors (results on stdout are unchanged)."


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context,
         version: bool = typer.Option(False, "--version", "-V",
                                      help="Print vethwrap's version and exit."),
         json_out: bool = typer.Option(False, "--json",
                                       help="With --version: print it as a JSON object."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
         debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")) -> None:
    """Build, verify, explain and tear down network-namespace labs."""
    from veth_wrap.cli import output

    _debug["on"] = debug or bool(os.environ.get("VETHWRAP_DEBUG"))
    output.QUIET["on"] = output.QUIET["on"] or quiet
    if version:
        _print_version(json_out)
        raise typer.Exit(ExitStatus.OK)
    if ctx.invoked_subcommand is None:  # no command: the help, and that is not an error
        output.line(ctx.get_help())
        raise typer.Exit(ExitStatus.OK)


def _print_version(json_out: bool) -> None:
    import platform
    from importlib import metadata

    from veth_wrap.cli.output import emit_json, line

    try:
        version = metadata.version("vethwrap")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "unknown"
    if json_out:
        emit_json({"name": "vethwrap", "version": version,
                   "python": platform.python_version()})
    else:
        line(f"vethwrap {version}")


def require_root(dry_run: bool = False) -> None:
    """The one privilege check: refuse early what would change or enter namespaces unprivileged."""
    from veth_wrap.kernel.caps import privileged

    if dry_run or privileged():
        return
    raise PreflightError(
        "this needs root (or CAP_NET_ADMIN with CAP_SYS_ADMIN) to change or enter network "
        "namespaces",
        "run it with sudo, or add --dry-run where the command has it to print the commands",
    )


def guarded(func: Callable) -> Callable:
    """Wrap a command: its returned status and every error become the exit status, here only.

    A command returns None (success) or an ExitStatus (or an int it passes through, as
    `exec` does); an error becomes one line on stderr and its class's exit status.
    """
    import functools
    import inspect

    @functools.wraps(func)
    def wrapper(*args, quiet: bool = False, **kwargs):
        from veth_wrap.cli import output

        output.QUIET["on"] = output.QUIET["on"] or quiet
        try:
            status = func(*args, **kwargs)
        except VethwrapError as exc:
            _fail(exc, exc.line(), exc.exit_code)
        except KeyboardInterrupt as exc:
            _fail(exc, "interrupted", ExitStatus.SIGINT)
        except OSError as exc:
            _fail(exc, f"{exc.strerror or exc} (see 'vethwrap doctor')", ExitStatus.FAILED)
        except Exception as exc:  # a bug of ours: still one line, and how to learn more
            _fail(exc, _internal(exc), ExitStatus.FAILED)
        if status:
            raise typer.Exit(int(status))

    # every command takes -q/--quiet: added here, so that no command can forget it
    signature = inspect.signature(func)
    quiet = inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation="bool",
                              default=typer.Option(False, "--quiet", "-q", help=QUIET_HELP))
    wrapper.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), quiet])
    wrapper.__annotations__ = {**func.__annotations__, "quiet": "bool"}
    return wrapper


def _internal(exc: BaseException) -> str:
    """The one line for an error vethwrap did not expect: a bug, to be reported."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return (f"internal error: {type(exc).__name__}{': ' + text if text else ''} (a bug in "
            "vethwrap: run it again with --debug to see where, and report that; a plan it "
            "was running was rolled back, and 'vethwrap show' lists what is there)")


def _fail(exc: BaseException, line: str, code: int):
    from veth_wrap.cli.output import error_line

    if _debug["on"]:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    error_line(line)
    raise typer.Exit(int(code))


def _register_all() -> None:
    """Attach the commands of every feature module; each imports its heavy parts lazily."""
    import importlib

    if app.registered_commands:  # once a process: run() may be called again in it
        return

    for name in COMMAND_MODULES:
        module = importlib.import_module(f".{name}", __package__)
        module.register(app)
    helpformat.arrange(app)


COMMAND_MODULES: list[str] = ["lab", "query", "diagnose", "labfiles", "link", "services",
                               "faults"]


def run() -> None:
    """Console-script entry point."""
    click = _click_exceptions()
    _register_all()
    try:
        code = app(prog_name="vethwrap", standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(ExitStatus.SIGINT)
    except click.UsageError as exc:
        sys.exit(_usage_error(exc))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(ExitStatus.FAILED)
    except Exception as exc:  # outside any command (parsing, completion): still one line
        if _debug["on"]:
            raise
        from veth_wrap.cli.output import error_line

        error_line(_internal(exc))
        sys.exit(ExitStatus.FAILED)
    sys.exit(code if isinstance(code, int) else ExitStatus.OK)


def _click_exceptions():
    """The click exceptions typer raises: its vendored copy (typer >= 0.20) or click's own."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def _usage_error(exc) -> int:
    """Click's usage errors as one stderr line (its own take several), exit 2."""
    from veth_wrap.cli.output import error_line

    if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: help was already printed
        message = exc.format_message().strip()
        if message:
            print(message)
        return ExitStatus.REFUSED
    where = exc.ctx.command_path if exc.ctx else "vethwrap"
    message = " ".join(exc.format_message().split())
    error_line(f"{message}{_closest(exc)} (see '{where} --help')")
    return ExitStatus.REFUSED


def _closest(exc) -> str:
    """For an unknown command, the registered one it most resembles."""
    import difflib
    import re

    unknown = re.match(r"No such command '(.+?)'", exc.format_message().strip())
    group = exc.ctx.command if exc.ctx else None
    said = exc.format_message()
    if not unknown or "did you mean" in said.lower() or not hasattr(group, "list_commands"):
        return ""
    close = difflib.get_close_matches(unknown.group(1), group.list_commands(exc.ctx), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
