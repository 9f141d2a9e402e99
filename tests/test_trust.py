"""Trust on a shared machine, on real namespaces: user text is never an option, no path is
opened through a link, destroy leaves nothing of its own and nothing of anyone else's."""

from __future__ import annotations

import time

import pytest

from veth_wrap.model.names import p2p_ifname

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(netns, cli):
    """A lab of two namespaces, destroyed afterwards."""
    a, b = netns.name(), netns.name()
    done = cli("create", a, b, "--no-verify")
    assert done.returncode == 0, done.stderr
    yield a, b
    cli("destroy", a, b)


@pytest.mark.parametrize("background", [False, True])
def test_capture_filter_is_never_an_option(pair, cli, tmp_path, background):
    a, b = pair
    evil = tmp_path / "evil.pcap"
    extra = ["--background", "--name", "evil"] if background else ["-c", "1"]
    done = cli("capture", a, p2p_ifname(b), "--filter", f"-w{evil}", *extra)
    assert done.returncode != 0, done.stdout + done.stderr
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not evil.exists():
        time.sleep(0.1)
    assert not evil.exists()
    assert "Traceback" not in done.stderr
