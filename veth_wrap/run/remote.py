"""Drive every host of a lab over OpenSSH: `ssh HOST vethwrap ... -f -`, the file on stdin.

The hosts run in parallel. `up_all` takes every host that this run changed back down when any
host fails, so that a lab is up on all its hosts or on none. The command run on each host is
VETHWRAP_REMOTE_COMMAND, else `remote_command:` from the file, else `vethwrap`: words, each
quoted (ssh hands the remote shell one string, so every word crosses it as shlex.join's text).
VETHWRAP_SSH replaces the ssh command itself (e.g. `ssh -F ./ssh_config`).
"""

from __future__ import annotations

import json
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from veth_wrap.errors import RemoteFailed, UsageError
from veth_wrap.model.hosts import Host, of_lab, remote_problem
from veth_wrap.model.topology import Lab
from veth_wrap.run.runner import Result, Runner, default_runner

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
NOT_FOUND = 127  # the remote shell's status for a command it cannot find
SSH_FAILED = 255


@dataclass
class HostResult:
    """What one host answered."""

    host: Host
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def data(self) -> dict:
        """The host's --json answer, when it gave one."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            return {}

    @property
    def changed(self) -> bool:
        """True unless the host said it changed nothing (unknown counts as changed)."""
        return self.data().get("changed", True) is not False

    def summary(self) -> str:
        data = self.data()
        if not self.ok:
            return f"failed: {self.reason()}"
        if "probes" in data:
            pending = len(data.get("pending", []))
            return (("built" if data.get("changed") else "already as asked")
                    + f", {data.get('answered', 0)}/{data['probes']} probes answered"
                    + (f", {pending} pending" if pending else ""))
        if "namespaces" in data:
            return f"removed {len(data['namespaces'])} namespace(s)"
        return "done"

    def reason(self) -> str:
        """Why it failed, in one line."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {self.returncode}"
        return last[len("error: "):] if last.startswith("error: ") else last

    def to_json(self) -> dict:
        return {"host": self.host.name, "ssh": self.host.ssh, "ok": self.ok,
                "exit_status": self.returncode, "result": self.data() or None,
                "error": None if self.ok else self.reason()}


def remote_command(lab: Lab) -> list[str]:
    """The words that run vethwrap on a host (VETHWRAP_REMOTE_COMMAND, as the shell splits it)."""
    given = os.environ.get("VETHWRAP_REMOTE_COMMAND")
    if not given:
        return list(of_lab(lab).remote_command or ("vethwrap",))
    try:
        words = shlex.split(given)
    except ValueError as exc:
        raise UsageError(f"VETHWRAP_REMOTE_COMMAND cannot be split into words: {exc}",
                         "e.g. VETHWRAP_REMOTE_COMMAND=/opt/venv/bin/vethwrap") from None
    problem = remote_problem(words)
    if problem:
        raise UsageError(f"VETHWRAP_REMOTE_COMMAND: {problem}",
                         "e.g. VETHWRAP_REMOTE_COMMAND='sudo -n /opt/venv/bin/vethwrap'")
    return words


def remote_line(lab: Lab, host: Host, words: list[str]) -> str:
    """The one string ssh hands the host's shell: vethwrap WORDS -f - --host NAME, quoted."""
    tail = words + ["-f", "-", "--host", host.name] + ([] if "--dry-run" in words else ["--json"])
    return shlex.join(remote_command(lab) + tail)


def ssh_argv(lab: Lab, host: Host, words: list[str]) -> list[str]:
    """ssh to the host running vethwrap WORDS -f - --host NAME --json."""
    ssh = shlex.split(os.environ.get("VETHWRAP_SSH", "ssh"))
    return ssh + list(SSH_OPTIONS) + ["--", host.ssh, remote_line(lab, host, words)]


def each(lab: Lab, text: str, words: list[str], runner: Optional[Runner] = None,
         hosts: Optional[list[Host]] = None, check: bool = True) -> list[HostResult]:
    """Run vethwrap WORDS on every host at once; raise on the first host that failed."""
    runner = runner or default_runner()
    chosen = hosts if hosts is not None else list(of_lab(lab).hosts)

    def one(host: Host) -> HostResult:
        result: Result = runner.run(ssh_argv(lab, host, words), stdin=text, check=False)
        return HostResult(host, result.returncode, result.stdout, result.stderr)

    with ThreadPoolExecutor(max(1, len(chosen))) as pool:
        results = list(pool.map(one, chosen))
    failed = [r for r in results if not r.ok]
    if check and failed:
        raise failure(lab, failed[0], words[0])
    return results


def up_all(lab: Lab, text: str, words: list[str], undo_words: list[str],
           runner: Optional[Runner] = None) -> list[HostResult]:
    """up on every host; when one fails, run undo_words (down) on the hosts this run changed."""
    results = each(lab, text, words, runner, check=False)
    failed = [r for r in results if not r.ok]
    if not failed:
        return results
    undo = [r.host for r in results if r.ok and r.changed]
    undone = each(lab, text, undo_words, runner, undo, check=False) if undo else []
    error = failure(lab, failed[0], "up")
    left = [r.host.name for r in undone if not r.ok]
    error.message += (f"; took {', '.join(h.name for h in undo)} back down" if undo else "")
    if left:
        error.message += f", but down failed on {', '.join(left)}"
        error.hint = "run 'vethwrap down -f FILE --all-hosts' when the hosts answer"
    return _raise(error)


def _raise(error: RemoteFailed):
    raise error


def failure(lab: Lab, result: HostResult, command: str) -> RemoteFailed:
    """The error for a host that failed: not installed, ssh failed, or its own error."""
    host = result.host
    said = result.reason()
    if result.returncode == NOT_FOUND or "command not found" in said or said.endswith(
            ": not found"):
        return RemoteFailed(f"vethwrap is not installed on host {host.name} ({host.ssh}): {said}",
                            "install it there (pip install vethwrap), or point remote_command: "
                            "in the file at it")
    if result.returncode == SSH_FAILED:
        return RemoteFailed(f"ssh to host {host.name} ({host.ssh}) failed: {said}",
                            "check that 'ssh " + host.ssh + " true' works without a password")
    return RemoteFailed(f"{command} on host {host.name} failed: {said}",
                        "fix it there, then run again", result.returncode)
