"""Steps that change disjoint objects are found from their ops' kinds and namespaces."""

from __future__ import annotations

from veth_wrap.run.together import grouped
from veth_wrap.steps import Kind, Op, Step


def _veth(here: str, ifname: str, far: str, peer: str) -> Op:
    """A veth made in here, its peer created in far."""
    return Op(Kind.ADD_VETH, (), creates=(("link", here, ifname), ("link", far, peer)),
              target=ifname, netns=far)


def _add(ns: str) -> Step:
    return Step((Op(Kind.ADD_NETNS, (), target=ns, netns=ns),))


def _inside(ns: str, *ops: Op) -> Step:
    return Step((Op(Kind.SET_LINK, (), target="lo"),) + ops, ns)


def _groups(steps: list[Step]) -> list[str]:
    return [step.group for step in grouped(steps)]


def test_members_that_make_their_own_veth_into_the_hub_are_apart():
    members = [step for m in ("a", "b", "c")
               for step in (_add(m), _inside(m, _veth(m, "vb", "hub", f"vp-{m}")))]
    ports = _inside("hub")
    groups = _groups(members + [ports])
    assert len(set(groups[:6])) == 1 and groups[0] and groups[6] == ""


def test_a_veth_made_into_a_namespace_ties_its_step_to_the_one_there():
    """A chain: c makes its link into b, a makes its link into b, b brings both up."""
    steps = [_inside("c", _veth("c", "x", "b", "y")), _inside("a", _veth("a", "x", "b", "z")),
             _inside("b")]
    groups = _groups(steps)
    assert groups[0] and groups[0] == groups[1] and groups[2] == ""


def test_steps_in_one_namespace_are_not_apart():
    assert _groups([_inside("a"), _inside("a")]) == ["", ""]


def test_a_deleted_link_takes_its_peer_so_its_step_stays_alone():
    steps = [Step((Op(Kind.DEL_LINK, (), target="x"),), ns) for ns in ("a", "b")]
    assert _groups(steps) == ["", ""]


def test_root_ops_reaching_into_namespaces_count_as_those_namespaces():
    steps = [Step((Op(Kind.ADD_FIREWALL, (), target=ns, netns=ns),), input="t")
             for ns in ("a", "b", "a")]
    groups = _groups(steps)
    assert groups[0] and groups[0] == groups[1] and groups[2] == ""
