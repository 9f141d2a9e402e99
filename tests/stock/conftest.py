"""Tests that run inside Debian's stock kernel, booted by tests/integration/test_stock_kernel.py.

They change the kernel they run on (modprobe, the root namespace's iptables policy and bridge
sysctls), so they run only in a virtme-ng guest: VETHWRAP_IN_GUEST=1 and a kernel command line
that virtme-ng wrote. Anywhere else they are skipped with the reason; they are not marked
`integration`, so that skip does not fail a CI=true run (the outer test, which is marked, carries
their result).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .guest import Names, in_guest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Outside the guest, skip this directory's tests with the reason."""
    inside, reason = in_guest()
    if inside:
        return
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def names(request):
    """Hands out unique namespace names; whatever they became is deleted afterwards."""
    made = Names(request.node.nodeid)
    request.addfinalizer(made.cleanup)
    return made
