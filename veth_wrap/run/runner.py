"""The only module that starts processes: runs argv lists through `sh`."""

from __future__ import annotations

import functools
import os
import re
import shutil
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence, TypeVar

from veth_wrap.errors import CommandFailed, PreflightError
from veth_wrap.run.schedule import PARALLEL_FROM, spread
from veth_wrap.steps import Kind

NETNS_RUN = "/run/netns"  # where `ip netns add` binds the named namespaces
PACKAGES = {"ip": "iproute2", "tc": "iproute2", "ping": "iputils-ping", "sysctl": "procps",
            "nsenter": "util-linux", "tcpdump": "tcpdump", "pasta": "passt"}
T = TypeVar("T")


def in_parts(items: list, work: Callable[[list], T]) -> list[T]:
    """work() on items, as one part, or from PARALLEL_FROM items as spread() parts at once."""
    parts = spread(items) if len(items) >= PARALLEL_FROM else [items]
    if len(parts) <= 1:
        return [work(items)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(work, parts))


@functools.lru_cache(maxsize=64)
def _which(program: str, path: str) -> Optional[str]:
    """shutil.which, remembered for as long as PATH stays the same (every command asks)."""
    return shutil.which(program, path=path)


_EXEC = re.compile(r"^(netns exec \S+ )([^/\s]\S*)", re.MULTILINE)


def exec_paths(batch: str) -> str:
    """A root batch with each `netns exec NS PROG` line naming PROG by its path.

    `ip netns exec` looks PROG up along PATH, one failed exec a directory before it: a
    dozen here, about 0.4 ms a fork. With the path it execs at once; a program not found
    keeps its name, so ip reports it as before.
    """
    path = os.environ.get("PATH", os.defpath)
    return _EXEC.sub(lambda m: m.group(1) + (_which(m.group(2), path) or m.group(2)), batch)


@dataclass(frozen=True)
class Result:
    """What a finished command printed and returned."""

    argv: tuple[str, ...]
    stdout: str
    stderr: str
    returncode: int


class Runner(Protocol):
    """Anything that can run an argv list, optionally feeding stdin."""

    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result: ...

    def run_file(self, kind: Kind, argv: Sequence[str], stdin: str | None = None) -> Result:
        """Do a file step of kind (argv is how it prints) without a process."""

    def netns(self, bound: bool = False) -> list[str]:
        """The named namespaces, as `ip -j netns list` names them (bound: only those a
        namespace is mounted on now)."""


def listed_netns(runner: Runner) -> list[str]:
    """The names `ip -j netns list` prints, run by runner (for runners without a directory)."""
    import json

    text = runner.run(["ip", "-j", "netns", "list"]).stdout.strip()
    return [entry["name"] for entry in json.loads(text)] if text else []


def require(program: str) -> str:
    """Return the path of a program, or refuse naming the Debian package that has it."""
    path = _which(program, os.environ.get("PATH", os.defpath))
    if path is None:
        package = PACKAGES.get(program, program)
        raise PreflightError(
            f"'{program}' was not found on PATH",
            f"install it: apt-get install -y {package}",
        )
    return path


class ShRunner:
    """Runs commands with `sh`, with LC_ALL=C and no tty, in a session of their own.

    A session of their own keeps a terminal's Ctrl-C away from an `ip -batch` half-way
    through: the signal reaches vethwrap, which finishes the step and rolls back.
    """

    def __init__(self) -> None:
        import sh  # imported here: it costs ~50 ms and dry runs never need it

        self._sh = sh
        self._env = dict(os.environ, LC_ALL="C")
        self._commands: dict[str, object] = {}

    def run_file(self, kind: Kind, argv: Sequence[str], stdin: str | None = None) -> Result:
        """Do a file step here, without a process: its kind says what (run/files)."""
        from veth_wrap.run import filesteps

        return Result(tuple(argv), filesteps.run_builtin(kind, argv, stdin), "", 0)

    def netns(self, bound: bool = False) -> list[str]:
        """/run/netns read here, as `ip netns list` reads it: a process costs milliseconds,
        and every command starts with this list."""
        try:
            names = sorted(os.listdir(NETNS_RUN))
        except FileNotFoundError:
            return []
        return [name for name in names if _bound(name)] if bound else names

    def _command(self, path: str):
        """sh's Command for a program's path, made once (each costs about 50 us)."""
        command = self._commands.get(path)
        if command is None:
            command = self._commands[path] = self._sh.Command(path)
        return command

    def run(self, argv: Sequence[str], stdin: str | None = None, check: bool = True) -> Result:
        """Run argv; raise CommandFailed on a non-zero exit when check is true."""
        command = self._command(require(argv[0]))
        fed = exec_paths(stdin) if stdin and argv[0] == "ip" and "-batch" in argv else stdin
        # stdin, stdout and stderr as memory files, not pipes: sh then starts no thread to
        # feed or drain them (about 0.3 ms a command), and a child that leaves a descendant
        # holding them open cannot keep vethwrap waiting for their end
        fds = [os.memfd_create("vethwrap-io", os.MFD_CLOEXEC) for _ in range(3)]
        try:
            if fed:
                _fill(fds[0], fed.encode())
            # _close_fds=False: every descriptor Python opens is close-on-exec already (lock.py
            # asks for it explicitly), and closing them one by one in the child costs ~0.5 ms.
            # An empty stdin reads as end of file at once.
            proc = command(
                *argv[1:], _in=fds[0], _out=fds[1], _err=fds[2],
                _env=self._env, _close_fds=False, _new_session=True, _return_cmd=True,
                _ok_code=range(256),  # the exit status is judged below, with stderr in hand
            )
            code = proc.exit_code
            out, err = _drain(fds[1]), _drain(fds[2])
        except self._sh.ErrorReturnCode as exc:
            code, out, err = exc.exit_code, _drain(fds[1]), _drain(fds[2])
        except OSError as exc:
            raise PreflightError(f"cannot run {argv[0]}: {exc.strerror}",
                                 "see 'vethwrap doctor'") from None
        finally:
            for fd in fds:
                os.close(fd)
        if code != 0 and (check or code < 0):  # a signal's kill fails even an unchecked run
            raise CommandFailed(argv, code, err, stdin or "")
        return Result(tuple(argv), out, err, code)


def _bound(name: str) -> bool:
    """True when /run/netns/NAME holds a namespace now: `ip netns add` makes the file before
    it binds the namespace there, and `ip netns del` unbinds it before it removes the file."""
    try:
        return os.stat(f"{NETNS_RUN}/{name}").st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def _fill(fd: int, data: bytes) -> None:
    """Write all of data into a memory file and rewind it for the child to read."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)


def _drain(fd: int) -> str:
    """All a memory file holds, from its start."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


_default: Runner | None = None


def default_runner() -> Runner:
    """The process-wide ShRunner, made on first use."""
    global _default
    if _default is None:
        _default = ShRunner()
    return _default


def exec_replace(argv: Sequence[str]) -> None:
    """Replace this process with argv: stdio and the exit status pass straight through."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(require(argv[0]), list(argv))


def quick_run(argv: Sequence[str], stdin: Optional[str] = None) -> str:
    """stdout of a short read-only command, "" when it fails: for shell completion.

    Plain subprocess, not `sh`: completion runs on every <TAB> and must start fast.
    """
    import subprocess

    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=5, env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 or stdin else ""


def quick_json(argv: Sequence[str]):
    """The JSON a short read-only command prints, None when it fails (for completion)."""
    import json

    try:
        return json.loads(quick_run(argv) or "null")
    except ValueError:
        return None
