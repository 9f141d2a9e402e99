"""`vethwrap exec NS -- CMD`: runs inside the namespace, exit status and stdio pass through."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_exec_passes_exit_codes_and_stdio_through(unchanged, netns, cli):
    ns = netns.make()
    done = cli("exec", ns, "--", "ip", "-o", "link", "show")
    assert done.returncode == 0 and done.stdout.count("\n") == 1 and "lo" in done.stdout
    assert cli("exec", ns, "--", "sh", "-c", "echo out; echo err >&2; exit 3").returncode == 3
    echoed = cli("exec", ns, "--", "cat", input="hello\n")
    assert echoed.stdout == "hello\n"
    missing = cli("exec", ns, "--", "no-such-command-h7")
    assert missing.returncode == 127 and "command not found" in missing.stderr
    bad = cli("exec", netns.name(), "--", "true")
    assert bad.returncode == 2 and "does not exist" in bad.stderr
