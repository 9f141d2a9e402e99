"""The command line: typer commands that parse arguments and call the library."""

from __future__ import annotations

import os
import sys
from typing import Callable

import typer

from veth_wrap.errors import ExitStatus, PreflightError, VethwrapError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Build, verify, explain and tear down network-namespace labs: veth pairs, bridges, "
    "routed chains.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

_debug = {"on": False}


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")) -> None:
    """Build, verify, explain and tear down network-namespace labs."""
    _debug["on"] = debug or bool(os.environ.get("VETHWRAP_DEBUG"))


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

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            status = func(*args, **kwargs)
        except VethwrapError as exc:
            _fail(exc, exc.line(), exc.exit_code)
        except KeyboardInterrupt as exc:
            _fail(exc, "interrupted", ExitStatus.SIGINT)
        except OSError as exc:
            _fail(exc, f"{exc.strerror or exc} (see 'vethwrap doctor')", ExitStatus.FAILED)
        if status:
            raise typer.Exit(int(status))

    return wrapper


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

    for name in COMMAND_MODULES:
        module = importlib.import_module(f".{name}", __package__)
        module.register(app)


COMMAND_MODULES: list[str] = ["lab", "query", "diagnose", "files", "link"]


def run() -> None:
    """Console-script entry point."""
    click = _click_exceptions()
    _register_all()
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(ExitStatus.SIGINT)
    except click.UsageError as exc:
        sys.exit(_usage_error(exc))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
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
    error_line(f"{' '.join(exc.format_message().split())} (see '{where} --help')")
    return ExitStatus.REFUSED
