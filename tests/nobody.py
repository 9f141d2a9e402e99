"""Run the CLI as an unprivileged user (uid 65534) from a root test process."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

NOBODY = 65534
ROOT = str(Path(__file__).resolve().parent.parent)
# When the interpreter lives where uid 65534 cannot read (pyenv under /root), setpriv gives
# that user back file reading only: CAP_DAC_READ_SEARCH, never CAP_NET_ADMIN.
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
           "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


@functools.cache
def prefix() -> tuple[tuple[str, ...], bool]:
    """(argv prefix, use user=) that runs this interpreter and package as uid 65534."""
    probe = [sys.executable, "-c", "import veth_wrap.cli, typer, rich"]
    try:
        plain = subprocess.run(probe, cwd=ROOT, user=NOBODY, group=NOBODY, extra_groups=[],
                               capture_output=True).returncode == 0
    except PermissionError:
        plain = False
    if plain:
        return (), True
    if shutil.which("setpriv") is None:
        raise RuntimeError("uid 65534 cannot read the interpreter and setpriv is missing")
    return tuple(SETPRIV), False


def run(*args: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python [FLAGS] -m veth_wrap ARGS` as uid 65534, with the cli fixture's environment."""
    head, as_user = prefix()
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_user else {}
    return subprocess.run([*head, sys.executable, *flags, "-m", "veth_wrap", *args], cwd=ROOT,
                          env=env,
                          capture_output=True, text=True, timeout=120, **kwargs)
