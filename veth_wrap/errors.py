"""Exception classes, one per kind of failure, each with its exit status and a hint."""

from __future__ import annotations

import re
import shlex
from enum import IntEnum
from typing import Sequence

# `ip -batch` names a failed line on stderr as "Command failed -:N" (N counts from 1)
_FAILED_LINE = re.compile(r"^Command failed -:(\d+)$", re.MULTILINE)


class ExitStatus(IntEnum):
    """What vethwrap's exit status says; only the CLI's boundary turns errors into one."""

    OK = 0
    FAILED = 1  # tried and failed; whatever changed was rolled back
    REFUSED = 2  # refused before changing anything
    NOT_FOUND = 127  # exec: the command does not exist
    SIGINT = 130
    SIGTERM = 143


def failed_lines(stderr: str) -> list[int]:
    """The numbers (from 1) of the lines an `ip -batch` reported as failed, in order."""
    return [int(number) for number in _FAILED_LINE.findall(stderr)]


class VethwrapError(Exception):
    """Base class: a message for the user and what to do next."""

    exit_code = ExitStatus.FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one line shown to the user."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(VethwrapError):
    """Bad input, refused before anything changed."""

    exit_code = ExitStatus.REFUSED


class NoSuchNamespace(UsageError):
    """A namespace the user named that the kernel does not hold."""

    def __init__(self, name: str, nor: str = "") -> None:
        where = f" (nor {nor})" if nor else ""  # nor: the other name it was looked for as
        super().__init__(f"namespace {name!r}{where} does not exist", "see 'vethwrap show'")
        self.name = name


class ConflictError(UsageError):
    """The kernel holds something that clashes with the topology asked for."""


class PreflightError(VethwrapError):
    """The host cannot run the command: not root, a program missing, iproute2 too old."""

    exit_code = ExitStatus.REFUSED


class LinkRefused(PreflightError):
    """A symbolic link where a file or folder of vethwrap's goes: never followed."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is a symbolic link, where vethwrap keeps its own files; "
                         "vethwrap does not follow it",
                         f"if nothing needs it, remove the link (rm {shlex.quote(path)}) "
                         "and run again")
        self.path = path


class CommandFailed(VethwrapError):
    """An external command exited non-zero."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, stdin: str = "") -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        self.stdin = stdin
        self.failed_line = _failed_input_line(self.stderr, stdin)
        what = " ".join(self.argv) if not self.failed_line else f"ip {self.failed_line}"
        kernel = _kernel_message(self.stderr) or f"exit status {returncode}"
        super().__init__(f"command failed: {what}: {kernel}", _hint_for(kernel))

    @property
    def killed(self) -> bool:
        """True when a signal ended the command (`sh` reports minus its number)."""
        return self.returncode < 0

    @property
    def lines_done(self) -> int | None:
        """How many lines of an `ip -batch` completed before the failing one, if known."""
        failed = failed_lines(self.stderr)
        return failed[0] - 1 if failed else None


class VerificationFailed(VethwrapError):
    """The topology was built but the kernel does not show what was asked."""

    def __init__(self, message: str, hint: str = "", unreached=None) -> None:
        super().__init__(message, hint)
        self.unreached = unreached  # (source namespace, address) of a failed probe, if any


class Unreachable(VethwrapError):
    """A destination did not answer."""


class Interrupted(VethwrapError):
    """SIGINT or SIGTERM arrived; the work was rolled back."""

    def __init__(self, signum: int) -> None:
        super().__init__(
            "interrupted; everything this run created was removed",
            "run the command again when ready",
        )
        self.exit_code = ExitStatus(128 + signum)


def _kernel_message(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln and not ln.startswith("Command failed")]
    return "; ".join(lines[:2])


def _failed_input_line(stderr: str, stdin: str) -> str:
    failed = failed_lines(stderr)
    lines = stdin.splitlines()
    return lines[failed[0] - 1] if failed and 0 < failed[0] <= len(lines) else ""


_HINTS = {
    "Specified qdisc kind is unknown": "this kernel lacks the qdisc (netem: sch_netem, needed "
    "for --delay and --jitter): modprobe sch_netem (Debian/Ubuntu: package "
    "linux-modules-extra-$(uname -r)); --loss and --rate work without it",
    "Unknown filter": "this kernel lacks clsact or cls_bpf (CONFIG_NET_SCH_INGRESS, "
    "CONFIG_NET_CLS_BPF), which --loss needs without sch_netem: use a kernel with either, "
    "or drop --loss; --rate uses tbf",
    'Option "-j" is unknown': "this iproute2 is too old for JSON output (ip -j): "
    "install iproute2 4.14 or newer (apt-get install -y iproute2)",
    "Permission denied": "run as root; /run/netns must be writable (see 'vethwrap doctor')",
    "Read-only file system": "/run/netns is on a read-only file system; see 'vethwrap doctor'",
    "File exists": "something of that name or address is already there; "
    "see 'vethwrap show' or remove it with 'vethwrap destroy'",
    "Operation not permitted": "run as root or with CAP_NET_ADMIN",
    "No such file or directory": "the namespace or device is gone; see 'vethwrap show'",
    "Cannot find device": "the interface does not exist; see 'vethwrap show'",
    "does not exist": "see 'vethwrap show' for what exists",
    "Invalid argument": "the kernel rejected a value; check the options",
    "Too many open files": "raise the open-file limit (ulimit -n) or build fewer namespaces",
    "No space left on device": "the kernel is out of resources; destroy unused labs",
}


def _hint_for(kernel: str) -> str:
    for needle, hint in _HINTS.items():
        if needle in kernel:
            return hint
    return "see 'vethwrap doctor' for the host's state"


class ServiceFailed(VethwrapError):
    """A service ended, or never listened, before it was ready; carries its log's last lines."""

    def __init__(self, message: str, hint: str = "", log_tail: Sequence[str] = ()) -> None:
        super().__init__(message, hint)
        self.log_tail = list(log_tail)


class RemoteFailed(VethwrapError):
    """A command run on another host over ssh failed; its own exit status is kept."""

    def __init__(self, message: str, hint: str = "", exit_code: int = ExitStatus.FAILED) -> None:
        super().__init__(message, hint)
        self.exit_code = ExitStatus.REFUSED if exit_code == 2 else ExitStatus.FAILED
