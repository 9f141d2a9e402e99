"""The command line: typer commands that parse arguments and call the library."""

from __future__ import annotations

import os
import sys
from typing import Callable

import typer

from veth_wrap.errors import PreflightError, VethwrapError

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
    """Refuse early when the command would change the kernel without privileges."""
    if dry_run or os.geteuid() == 0 or _has_caps():
        return
    raise PreflightError(
        "this needs root (or CAP_NET_ADMIN with CAP_SYS_ADMIN) to change network namespaces",
        "run it with sudo, or add --dry-run to print the commands without running them",
    )


def _has_caps(status: str = "/proc/self/status") -> bool:
    """True when the effective capabilities hold CAP_NET_ADMIN and CAP_SYS_ADMIN."""
    # CAP_SYS_ADMIN too: `ip netns add` bind-mounts the namespace under /run/netns
    wanted = (1 << 12) | (1 << 21)
    try:
        with open(status) as lines:
            for line in lines:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16) & wanted == wanted
    except OSError:
        pass
    return False


def guarded(func: Callable) -> Callable:
    """Wrap a command so that every error becomes one line and an exit status."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except VethwrapError as exc:
            _fail(exc, exc.line(), exc.exit_code)
        except KeyboardInterrupt as exc:
            _fail(exc, "interrupted", 130)
        except OSError as exc:
            _fail(exc, f"{exc.strerror or exc} (see 'vethwrap doctor')", 1)

    return wrapper


def _fail(exc: BaseException, line: str, code: int):
    from veth_wrap.cli.output import error_line

    if _debug["on"]:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    error_line(line)
    raise typer.Exit(code)


def _register_all() -> None:
    """Attach the commands of every feature module; each imports its heavy parts lazily."""
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f".{name}", __package__)
        module.register(app)


COMMAND_MODULES: list[str] = ["lab", "query", "diagnose", "files", "link", "services"]


def run() -> None:
    """Console-script entry point."""
    click = _click_exceptions()
    _register_all()
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except click.UsageError as exc:
        sys.exit(_usage_error(exc))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


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
        return 2
    where = exc.ctx.command_path if exc.ctx else "vethwrap"
    error_line(f"{' '.join(exc.format_message().split())} (see '{where} --help')")
    return 2
