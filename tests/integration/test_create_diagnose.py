"""`create` explains a lab that does not verify with the same diagnosis `diagnose` gives."""

from __future__ import annotations

import shutil

import pytest
from conftest import ip
from inprocess import vethwrap

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables (Debian: iptables)")
def test_create_that_does_not_verify_prints_cause_and_fix(netns, unchanged):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b).returncode == 0
    ip("netns", "exec", b, "iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP")
    again = vethwrap("create", a, b)
    assert again.returncode == 1
    assert "iptables" in again.stderr and "drops" in again.stderr
    assert f"fix: ip netns exec {b} iptables -t filter -D INPUT -p icmp -j DROP" in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("error: lab")
    assert vethwrap("destroy", a, b).returncode == 0
