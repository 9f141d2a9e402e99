"""The command line: typer commands and rendering; the only code that writes to stdout/stderr."""


def run() -> None:
    """Console-script entry point (imports typer only when called)."""
    from veth_wrap.cli.app import run as main

    main()
