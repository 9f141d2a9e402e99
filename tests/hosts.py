"""Simulated hosts on one machine: each a network namespace plus a mount namespace of its own.

A host's network namespace is its root namespace; its mount namespace has a tmpfs of its own on
/run, so its `ip netns list`, vethwrap's lock and sshd's run directory are its own too. Both
namespaces are kept by bind mounts on files in a private directory, so that `nsenter` enters
them again and again. Teardown deletes the namespaces made inside each host, ends the processes
the test started (by PID), then unmounts. Nothing is added to the real root namespace: the
underlay veth is created with its ends already inside the two hosts.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

WORKTREE = Path(__file__).resolve().parent.parent

# a lab over two hosts, two namespaces each (tests of lab files with hosts)
WAN = """\
name: wan
subnet: 10.61.0.0/24
hosts:
  left:  {underlay: 192.168.77.1, namespaces: [a1, a2]}
  right: {underlay: 192.168.77.2, namespaces: [b1, b2]}
namespaces: [a1, a2, b1, b2]
links:
  - between: [a1, b1]
bridges:
  - name: lan
    subnet: 10.61.1.0/24
    members: [a2, b2]
"""


def _sh(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kwargs)


@dataclass
class Host:
    """One simulated host: enter it with nsenter on its two kept namespaces."""

    name: str
    dir: Path
    address: str = ""  # its underlay address, once linked
    processes: list = field(default_factory=list)

    @property
    def net(self) -> Path:
        return self.dir / f"{self.name}.net"

    @property
    def mnt(self) -> Path:
        return self.dir / f"{self.name}.mnt"

    def argv(self, *argv: str) -> list[str]:
        """argv run inside the host."""
        return ["nsenter", f"--net={self.net}", f"--mount={self.mnt}", f"--wd={WORKTREE}", *argv]

    def run(self, *argv: str, check: bool = True, input: str | None = None,
            env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a command inside the host and wait for it."""
        return subprocess.run(self.argv(*argv), check=check, capture_output=True, text=True,
                              input=input, env=env, timeout=timeout, cwd=WORKTREE)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("ip", *args, check=check)

    def vethwrap(self, *args: str, input: str | None = None, env: dict | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess:
        """This checkout's vethwrap, run on the host as a user would."""
        full = dict(os.environ, NO_COLOR="1", COLUMNS="200", **(env or {}))
        return self.run(sys.executable, "-m", "veth_wrap", *args, check=False, input=input,
                        env=full, timeout=timeout)

    def start(self, *argv: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
        """Start a process inside the host; it is killed by PID at teardown."""
        proc = subprocess.Popen(self.argv(*argv), cwd=WORKTREE, env=env, **kwargs)
        self.processes.append(proc)
        return proc

    def netns(self) -> list[str]:
        """The host's own `ip netns list`."""
        text = self.ip("netns", "list").stdout
        return sorted(line.split()[0] for line in text.splitlines() if line.strip())

    def links(self) -> list[str]:
        """The names of the host's root-namespace links."""
        text = self.ip("-o", "link", "show").stdout
        return sorted(line.split(": ")[1].split("@")[0] for line in text.splitlines())

    def snapshot(self) -> tuple[list[str], list[str]]:
        return self.netns(), self.links()

    def stop(self) -> None:
        """Kill what the test started here (by PID), delete the namespaces made inside."""
        for proc in self.processes:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.mnt.exists() and _mounted(self.mnt):
            for ns in self.netns():
                self.ip("netns", "del", ns, check=False)


class Hosts:
    """Simulated hosts under a private directory, named with a unique prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-hosts-"))
        _sh("mount", "--bind", str(self.dir), str(self.dir))
        _sh("mount", "--make-private", str(self.dir))
        self.hosts: list[Host] = []
        self._links = 0

    def add(self, name: str) -> Host:
        """A new host with lo up and a /run of its own."""
        host = Host(name, self.dir)
        self.hosts.append(host)
        host.net.touch()
        host.mnt.touch()
        # /etc/netns too: lab names (name files) are per host, as on separate machines
        os.makedirs("/etc/netns", exist_ok=True)
        _sh("unshare", f"--net={host.net}", f"--mount={host.mnt}", "--propagation", "private",
            "sh", "-c", "mount -t tmpfs vethwrap-test-run /run && "
            "mount -t tmpfs vethwrap-test-etc /etc/netns && "
            "mkdir -p /run/netns /run/sshd && ip link set lo up")
        return host

    def link(self, left: Host, right: Host, subnet: str = "192.168.77", mtu: int = 1500,
             first: int = 1) -> None:
        """An underlay veth between two hosts, ends named after the hosts, with addresses."""
        self._links += 1
        a, b = f"ul{self._links}-{right.name}"[:15], f"ul{self._links}-{left.name}"[:15]
        _sh("ip", "link", "add", a, "netns", str(left.net), "mtu", str(mtu), "type", "veth",
            "peer", "name", b, "netns", str(right.net), "mtu", str(mtu))
        for host, dev, number in ((left, a, first), (right, b, first + 1)):
            host.address = host.address or f"{subnet}.{number}"
            host.ip("addr", "add", f"{subnet}.{number}/24", "dev", dev)
            host.ip("link", "set", dev, "up")

    def switch(self, hosts: list[Host], subnet: str = "192.168.77") -> None:
        """An underlay bridge in the first host's root namespace joining every host."""
        hub = hosts[0]
        hub.ip("link", "add", "ulbr", "type", "bridge")
        hub.ip("addr", "add", f"{subnet}.1/24", "dev", "ulbr")
        hub.ip("link", "set", "ulbr", "up")
        hub.address = f"{subnet}.1"
        for number, host in enumerate(hosts[1:], start=2):
            a, b = f"ul-{host.name}"[:15], "ul0"
            _sh("ip", "link", "add", a, "netns", str(hub.net), "type", "veth", "peer", "name",
                b, "netns", str(host.net))
            hub.ip("link", "set", a, "master", "ulbr", "up")
            host.ip("addr", "add", f"{subnet}.{number}/24", "dev", b)
            host.ip("link", "set", b, "up")
            host.address = f"{subnet}.{number}"

    def cleanup(self) -> None:
        """Namespaces inside each host, processes, then the mounts, then the directory."""
        for host in self.hosts:
            host.stop()
        for host in self.hosts:
            for path in (host.mnt, host.net):
                if _mounted(path):
                    _sh("umount", str(path), check=False)
        _sh("umount", str(self.dir), check=False)
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    def ssh(self, hosts: list[Host]) -> dict[str, str]:
        """sshd on each host's underlay address only, with keys made for this test.

        Returns the environment that makes `vethwrap --all-hosts` use them and this checkout.
        """
        keys = self.dir / "ssh"
        keys.mkdir()
        for name in ("host_key", "id"):
            _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name))
        (keys / "authorized_keys").write_text((keys / "id.pub").read_text())
        (keys / "config").write_text(
            f"Host *\n  IdentityFile {keys / 'id'}\n  IdentitiesOnly yes\n"
            "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  LogLevel ERROR\n")
        for host in hosts:
            host.start(SSHD, "-D", "-e", "-f", "/dev/null", "-o", f"ListenAddress={host.address}",
                       "-o", f"HostKey={keys / 'host_key'}", "-o",
                       f"AuthorizedKeysFile={keys / 'authorized_keys'}", "-o", "StrictModes=no",
                       "-o", "PidFile=none", "-o", "UsePAM=no", "-o", "PasswordAuthentication=no",
                       "-o", "KbdInteractiveAuthentication=no",
                       "-o", "PermitRootLogin=prohibit-password",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        here = shlex.join(["env", "-C", str(WORKTREE), "NO_COLOR=1", sys.executable, "-m",
                           "veth_wrap"])
        env = {"VETHWRAP_SSH": f"ssh -F {keys / 'config'}", "VETHWRAP_REMOTE_COMMAND": here}
        for host in hosts:
            _wait_for_ssh(host, env)
        return env


SSHD = "/usr/sbin/sshd"


def _wait_for_ssh(host: Host, env: dict, seconds: float = 10) -> None:
    import time

    deadline = time.monotonic() + seconds
    while True:
        probe = host.run(*shlex.split(env["VETHWRAP_SSH"]), "-o", "BatchMode=yes", host.address,
                         "true", check=False, timeout=seconds)
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"sshd on {host.name} does not answer: {probe.stderr}")
        time.sleep(0.1)


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as lines:
        return any(line.split()[4] == str(path) for line in lines)


def sim_hosts_fixture():
    """A pytest fixture: Hosts under a private directory, always torn down."""
    import pytest

    @pytest.fixture
    def sim_hosts(request):
        from conftest import RUN_ID

        made = Hosts(f"vt{RUN_ID}")
        request.addfinalizer(made.cleanup)
        return made

    return sim_hosts


SERVER = """
import hashlib, socket, sys
srv = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(1)
print('ready', flush=True)
conn, _ = srv.accept()
digest, total = hashlib.sha256(), 0
while True:
    data = conn.recv(65536)
    if not data:
        break
    digest.update(data)
    total += len(data)
print(total, digest.hexdigest(), flush=True)
"""

CLIENT = """
import hashlib, os, socket, sys, time
data = os.urandom(int(sys.argv[3]))
start = time.monotonic()
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
conn.sendall(data)
conn.shutdown(socket.SHUT_WR)
conn.recv(1)
took = time.monotonic() - start
print(len(data), hashlib.sha256(data).hexdigest(), round(len(data) * 8 / took / 1e6, 1))
"""


def tcp_transfer(server: Host, server_ns: str, address: str, client: Host, client_ns: str,
                 size: int = 4_000_000, port: int = 5201) -> tuple[str, str, float]:
    """Send size random bytes over TCP between two lab namespaces: (sent, received, Mbit/s)."""
    proc = server.start("ip", "netns", "exec", server_ns, sys.executable, "-c", SERVER, address,
                        str(port), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    sent = client.run("ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT, address,
                      str(port), str(size), timeout=60).stdout.split()
    got = proc.stdout.readline().split()
    proc.wait(timeout=10)
    return " ".join(sent[:2]), " ".join(got[:2]), float(sent[2])
