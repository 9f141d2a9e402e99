"""A lab's namespaces, the hub last: the same answer for a built Lab and a kernel view."""

from __future__ import annotations

import pytest

from veth_wrap.model.facts import LabView
from veth_wrap.model.shapes import build
from veth_wrap.model.topology import Kind


@pytest.mark.parametrize("hub", [None, "lab-hub"])
def test_view_lists_members_then_hub(hub):
    view = LabView("lab", "bridge", ["lab-a", "lab-b"], hub=hub)
    assert view.namespaces() == ["lab-a", "lab-b"] + ([hub] if hub else [])


@pytest.mark.parametrize("kind", [Kind.PAIR, Kind.BRIDGE])
def test_built_lab_and_its_view_agree(kind):
    lab = build(["a", "b"] if kind is Kind.PAIR else ["a", "b", "c"], kind=kind)
    view = LabView(lab.name, kind.value, list(lab.members), hub=lab.hub)
    assert tuple(view.namespaces()) == lab.namespaces()
    assert lab.namespaces()[-1] == (lab.hub or "b")
