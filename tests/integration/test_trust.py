"""Trust on a shared machine, on real namespaces: user text is never an option, no path is
opened through a link, destroy leaves nothing of its own and nothing of anyone else's."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from conftest import RUN_ID, ip
from hosts import sim_hosts_fixture
from inprocess import vethwrap

from veth_wrap.model.names import p2p_ifname

pytestmark = pytest.mark.integration
sim_hosts = sim_hosts_fixture()


@pytest.fixture
def pair(netns):
    """A lab of two namespaces, destroyed afterwards."""
    a, b = netns.name(), netns.name()
    done = vethwrap("create", a, b, "--no-verify")
    assert done.returncode == 0, done.stderr
    yield a, b
    vethwrap("destroy", a, b)


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


def _plant(link: str, target) -> None:
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(str(target), link)


def _unplant(link: str) -> None:
    if os.path.islink(link):
        os.unlink(link)
    parent = os.path.dirname(link)
    if parent != "/etc/netns" and os.path.isdir(parent) and not os.listdir(parent):
        os.rmdir(parent)


def _one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1 and "Traceback" not in text


@pytest.mark.parametrize("at", ["folder", "file"])
def test_create_refuses_a_link_where_a_name_file_goes(netns, tmp_path, unchanged, at):
    a, b = netns.name(), netns.name()
    target = tmp_path / "target"
    target.mkdir()
    (target / "hosts").write_text("theirs\n")
    link = f"/etc/netns/{b}" + ("/hosts" if at == "file" else "")
    _plant(link, target / "hosts" if at == "file" else target)
    try:
        done = vethwrap("create", a, b)
        assert done.returncode == 2, done.stdout + done.stderr
        assert link in done.stderr and "symbolic link" in done.stderr
        assert _one_line(done.stderr), done.stderr
        assert os.listdir(target) == ["hosts"] and (target / "hosts").read_text() == "theirs\n"
        assert not os.path.exists(f"/etc/netns/{a}")
    finally:
        _unplant(link)


@pytest.mark.parametrize("at", ["folder", "file"])
def test_destroy_removes_nothing_through_a_link(netns, tmp_path, unchanged, at):
    a, b = netns.name(), netns.name()
    done = vethwrap("create", a, b, "--no-verify")
    assert done.returncode == 0, done.stderr
    target = tmp_path / "target"
    target.mkdir()
    ours = open(f"/etc/netns/{b}/hosts").read()  # vethwrap's own text, marks and all
    (target / "hosts").write_text(ours)
    os.unlink(f"/etc/netns/{b}/hosts")
    if at == "folder":
        os.rmdir(f"/etc/netns/{b}")
    link = f"/etc/netns/{b}" + ("/hosts" if at == "file" else "")
    _plant(link, target / "hosts" if at == "file" else target)
    try:
        gone = vethwrap("destroy", a, b)
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert f"{link} is a symbolic link" in gone.stderr
        assert os.path.islink(link) and (target / "hosts").read_text() == ours
        assert not os.path.exists(f"/etc/netns/{a}")
    finally:
        _unplant(link)


RUN_PATHS = ["/run/vethwrap", "/run/vethwrap/lock", "/run/vethwrap/logs",
             "/run/vethwrap/logs/{lab}", "/run/vethwrap/logs/{lab}/{a}",
             "/run/vethwrap/logs/{lab}/{a}/sleep.log"]


@pytest.mark.parametrize("path", RUN_PATHS)
def test_links_under_run_vethwrap_are_refused(sim_hosts, tmp_path, path):
    """In a simulated host (its own /run): a link at each path vethwrap opens there."""
    host = sim_hosts.add("solo")
    a, b = f"vt{RUN_ID}ra", f"vt{RUN_ID}rb"
    link = path.format(lab=a, a=a)
    target = tmp_path / "target"
    target.mkdir()
    (target / "theirs").write_text("theirs\n")
    refusing = ["create", a, b, "--no-verify"]
    if link.startswith("/run/vethwrap/"):  # the lock's folder is fine: create, then run
        done = host.vethwrap(*refusing)
        assert done.returncode == 0, done.stderr
        refusing = ["run", a, "--", "sleep", "600"]
    host.run("mkdir", "-p", os.path.dirname(link))
    host.run("rm", "-f", link)
    host.run("ln", "-s", str(target / "theirs" if link.endswith(("lock", ".log")) else target),
             link)
    done = host.vethwrap(*refusing)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{link} is a symbolic link" in done.stderr and _one_line(done.stderr), done.stderr
    assert os.listdir(target) == ["theirs"] and (target / "theirs").read_text() == "theirs\n"
    if "logs" in link:  # destroy leaves the link and what it points at
        gone = host.vethwrap("destroy", a, b)
        assert gone.returncode == 0, gone.stderr
        assert host.netns() == [] and (target / "theirs").read_text() == "theirs\n"
        assert os.listdir(target) == ["theirs"]
        if link.count("/") <= 4:  # a link inside the lab's own log folder goes with it
            assert f"{link} is a symbolic link" in gone.stderr
            assert host.run("test", "-L", link, check=False).returncode == 0


@pytest.mark.parametrize("openat2", [True, False])
def test_nofollow_names_the_link_with_and_without_openat2(tmp_path, monkeypatch, openat2):
    from veth_wrap.errors import LinkRefused
    from veth_wrap.run import nofollow

    if not openat2:
        monkeypatch.setattr(nofollow, "_openat2", False)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "hosts").write_text("theirs\n")
    os.symlink(tmp_path / "real", tmp_path / "link")
    for call in (lambda: nofollow.read_text(f"{tmp_path}/link/hosts"),
                 lambda: nofollow.write(f"{tmp_path}/link/hosts", b"ours\n"),
                 lambda: nofollow.makedirs(f"{tmp_path}/link/deeper"),
                 lambda: nofollow.listdir(f"{tmp_path}/link")):
        with pytest.raises(LinkRefused) as found:
            call()
        assert found.value.path == f"{tmp_path}/link"
    nofollow.remove(f"{tmp_path}/link")  # the link goes; what it points at stays
    assert not os.path.lexists(tmp_path / "link")
    assert (tmp_path / "real" / "hosts").read_text() == "theirs\n"
    assert nofollow.read_text(f"{tmp_path}/real/hosts")[0] == "theirs\n"


def _inside(ns: str) -> dict:
    """What a namespace holds that create may change: links, lo, forwarding."""
    links = json.loads(ip("-n", ns, "-j", "addr", "show").stdout)
    forward = ip("netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
    forward6 = ip("netns", "exec", ns, "sysctl", "-n",
                  "net.ipv6.conf.all.forwarding").stdout.strip()
    return {"links": sorted((link["ifname"], "UP" in link["flags"], link.get("ifalias"),
                             sorted(a["local"] for a in link.get("addr_info", [])))
                            for link in links), "forward": (forward, forward6)}


@pytest.mark.parametrize("shape", [("pair", 2, []), ("chain", 3, []), ("chain6", 3, ["-6"]),
                                   ("bridge", 3, [])])
def test_destroy_in_namespaces_that_were_there_before(unchanged, netns, shape):
    topology, count, extra = shape
    spaces = [netns.make() for _ in range(count)]
    before = {ns: _inside(ns) for ns in spaces}
    made = vethwrap("create", *spaces, "-t", topology.rstrip("6"), *extra)
    assert made.returncode == 0, made.stderr
    assert os.path.exists(f"/etc/netns/{spaces[0]}/hosts")
    gone = vethwrap("destroy", *spaces)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert {ns: _inside(ns) for ns in spaces} == before
    assert not any(os.path.exists(f"/etc/netns/{ns}") for ns in spaces)
    again = vethwrap("destroy", *spaces)
    assert again.returncode == 0 and "nothing of vethwrap's" in again.stderr + again.stdout


@pytest.mark.parametrize("remover", ["create", "destroy", "destroy --all"])
def test_name_files_of_gone_namespaces_are_found_and_removed(sim_hosts, remover):
    """In a simulated host (its own /etc/netns): a namespace deleted, one deleted and made
    again by someone else; doctor names their files, create/destroy/destroy --all remove them."""
    host = sim_hosts.add("solo")
    a, b, c, d = (f"vt{RUN_ID}h{n}" for n in "abcd")
    assert host.vethwrap("create", a, b, "--no-verify").returncode == 0
    if remover == "destroy":
        assert host.vethwrap("create", c, d, "--no-verify").returncode == 0
    host.ip("netns", "del", a)
    host.ip("netns", "add", a)  # someone else's namespace now, of the same name
    host.ip("netns", "del", b)
    doctor = json.loads(host.vethwrap("doctor", "--json").stdout)
    found = next(check for check in doctor["checks"] if check["name"] == "name files")
    assert found["status"] == "warning", found
    assert f"/etc/netns/{a}/hosts" in found["detail"] and f"/etc/netns/{b}/hosts" in found["detail"]
    assert found["fix"] == [f"vethwrap destroy {a} {b}"]
    argv = {"create": ["create", c, d, "--no-verify"], "destroy": ["destroy", c, d],
            "destroy --all": ["destroy", "--all"]}[remover]
    done = host.vethwrap(*argv)
    assert done.returncode == 0, done.stderr
    for ns in (a, b):
        assert host.run("test", "-e", f"/etc/netns/{ns}", check=False).returncode != 0
    assert "vethwrap" not in host.run("ip", "netns", "exec", a, "cat", "/etc/hosts").stdout
    doctor = json.loads(host.vethwrap("doctor", "--json").stdout)
    found = next(check for check in doctor["checks"] if check["name"] == "name files")
    assert found["status"] == "ok", found


def _ends_now(*spaces: str) -> dict:
    """Addresses, MTU and qdiscs of every link in the namespaces."""
    found = {}
    for ns in spaces:
        for link in json.loads(ip("-n", ns, "-j", "addr", "show").stdout):
            qdisc = subprocess.run(["tc", "-n", ns, "-j", "qdisc", "show", "dev", link["ifname"]],
                                   capture_output=True, text=True, check=True).stdout
            found[(ns, link["ifname"])] = (link["mtu"], sorted(a["local"] for a in
                                                               link.get("addr_info", [])), qdisc)
    return found


@pytest.mark.parametrize("first, again, named", [
    (["--subnet", "10.77.0.0/24"], ["--subnet", "10.78.0.0/24"], ["addresses"]),
    ([], ["--mtu", "9000"], ["mtu"]),
    (["--rate", "2mbit"], ["--rate", "1mbit", "--mtu", "4000"], ["rate", "mtu"]),
    ([], ["--loss", "1%"], ["loss"]),
    ([], ["-6"], ["addresses"]),
])
def test_create_again_with_other_options_is_refused(netns, unchanged, first, again,
                                                    named):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--no-verify", *first).returncode == 0
    try:
        before = _ends_now(a, b)
        done = vethwrap("create", a, b, "--no-verify", *again)
        assert done.returncode == 2, done.stdout + done.stderr
        assert _one_line(done.stderr) and "already built with other options" in done.stderr
        for option in named:
            assert f"{option}: {a}:{p2p_ifname(b)} has " in done.stderr, done.stderr
        assert _ends_now(a, b) == before
        same = vethwrap("create", a, b, "--no-verify", *first)
        assert same.returncode == 0 and _ends_now(a, b) == before
    finally:
        assert vethwrap("destroy", a, b).returncode == 0


def test_create_again_with_the_same_rate_in_other_words_changes_nothing(netns, unchanged):
    a, b = netns.name(), netns.name()
    assert vethwrap("create", a, b, "--no-verify", "--rate", "1mbit").returncode == 0
    try:
        done = vethwrap("create", a, b, "--no-verify", "--rate", "1000kbit", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["changed"] is False
    finally:
        assert vethwrap("destroy", a, b).returncode == 0


UNUSABLE = ["127.0.0.0/8", "127.0.0.0/24", "fe80::/64", "169.254.0.0/16", "0.0.0.0/0", "::/0",
            "224.0.0.0/4", "239.1.0.0/24", "ff02::/64", "0.0.0.0/8", "96.0.0.0/3", "::/64"]


@pytest.mark.parametrize("subnet", UNUSABLE)
def test_unusable_networks_are_refused_before_anything_changes(netns, cli, unchanged, tmp_path,
                                                               subnet):
    a, b = netns.name(), netns.name()
    started = time.monotonic()
    done = cli("create", a, b, "--subnet", subnet)
    assert done.returncode == 2 and _one_line(done.stderr), done.stderr
    assert subnet.split("/")[0] in done.stderr
    assert time.monotonic() - started < 5
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"name: {a}\nsubnet: {subnet}\nnamespaces: [{a}, {b}]\nlinks: [[{a}, {b}]]\n")
    for argv in (("validate", "-f", str(lab)), ("up", "-f", str(lab))):
        done = vethwrap(*argv)
        assert done.returncode == 2 and "subnet" in done.stderr, done.stderr
    assert not os.path.exists(f"/etc/netns/{a}")


def test_link_addresses_and_lo_in_a_lab_file_are_refused(netns, unchanged, tmp_path):
    a, b = netns.name(), netns.name()
    lab = tmp_path / "lab.yaml"
    for link in ("{between: [A, B], interfaces: [lo, eth0]}",
                 "{between: [A, B], addresses: [224.0.0.1/24, 10.1.0.2/24]}",
                 "{between: [A, B], addresses: ['fe80::1/64', 'fe80::2/64']}"):
        lab.write_text(f"name: {a}\nnamespaces: [{a}, {b}]\nlinks: ["
                       f"{link.replace('A', a).replace('B', b)}]\n")
        for argv in (("validate", "-f", str(lab)), ("up", "-f", str(lab))):
            done = vethwrap(*argv)
            assert done.returncode == 2, (link, done.stderr)
    lab.write_text(f"name: {a}\nnamespaces: [{a}, {b}]\n"
                   f"links: [{{between: [{a}, {b}], interfaces: [eth0, eth1]}}]\n")
    done = vethwrap("up", "-f", str(lab), "--no-verify")  # host-like names inside a lab are fine
    try:
        assert done.returncode == 0, done.stderr
    finally:
        assert vethwrap("destroy", a, b).returncode == 0


def test_a_lab_that_can_fill_the_neighbour_table_is_warned_about(netns, unchanged):
    limit_path = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"
    limit = int(open(limit_path).read())
    members = 2
    while members * (members - 1) < limit:  # a bridge of k members: k(k-1) ARP entries
        members += 1
    spaces = [netns.name() for _ in range(members)]
    done = vethwrap("create", *spaces, "--no-verify")
    try:
        assert done.returncode == 0, done.stderr
        assert f"can make {members * (members - 1)} IPv4 neighbour entries" in done.stderr
        assert f"gc_thresh3 = {limit}" in done.stderr
        assert "sysctl -w net.ipv4.neigh.default.gc_thresh3=" in done.stderr
        assert int(open(limit_path).read()) == limit  # vethwrap changed no host setting
    finally:
        assert vethwrap("destroy", *spaces).returncode == 0
    small = [netns.name(), netns.name()]
    done = vethwrap("create", *small, "--no-verify")
    try:
        assert done.returncode == 0 and "neighbour" not in done.stderr
    finally:
        assert vethwrap("destroy", *small).returncode == 0


def test_neighbour_entries_of_each_shape():
    from veth_wrap.model import shapes
    from veth_wrap.model.neighbours import entries

    assert entries(shapes.build(["a", "b"]), 4) == 2
    assert entries(shapes.build(["a", "b", "c"], kind=shapes.Kind.CHAIN), 4) == 4
    assert entries(shapes.build(list("abcd"), kind=shapes.Kind.MESH), 4) == 12
    assert entries(shapes.build(list("abcde")), 4) == 20
    dual = shapes.build(list("abcde"), ipv6=True)
    assert entries(dual, 4) == 20 and entries(dual, 6) == 40  # and each link-local address


def test_a_namespace_half_deleted_by_someone_else_does_not_fail_a_read(sim_hosts):
    """`ip netns del` unbinds /run/netns/NAME before it removes the file (and `ip netns add`
    makes the file before it binds it): a read of every namespace meanwhile must go on."""
    host = sim_hosts.add("solo")
    a, b = f"vt{RUN_ID}da", f"vt{RUN_ID}db"
    assert host.vethwrap("create", a, b, "--no-verify").returncode == 0
    host.run("touch", f"/run/netns/vt{RUN_ID}dhalf")  # a name without a namespace bound
    for argv in (("show",), ("destroy", "--lab", a, "--dry-run"), ("destroy", "--lab", a)):
        done = host.vethwrap(*argv)
        assert done.returncode == 0, (argv, done.stderr)
    assert host.netns() == [f"vt{RUN_ID}dhalf"]


def test_a_bridge_named_like_a_host_interface_is_refused(netns, unchanged, tmp_path):
    """`where: root` with the name of a device the host has: its ports would join that."""
    host_dev = next(link["ifname"] for link in json.loads(ip("-j", "link", "show").stdout)
                    if link["ifname"] != "lo")
    a, b = netns.name(), netns.name()
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"name: {a}\nnamespaces: [{a}, {b}]\nbridges:\n"
                   f"  - {{name: {host_dev}, where: root, members: [{a}, {b}]}}\n")
    for argv in (("up", "-f", str(lab), "--dry-run"), ("up", "-f", str(lab))):
        done = vethwrap(*argv)
        assert done.returncode == 2 and _one_line(done.stderr), done.stderr
        assert f"interface {host_dev} already exists in the root namespace" in done.stderr
    assert not os.path.exists(f"/etc/netns/{a}")


def test_options_are_compared_by_value_delay_and_jitter_too():
    """The comparison create refuses by, on facts as read (netem is not on every kernel)."""
    from veth_wrap.compile import drift
    from veth_wrap.model import shapes
    from veth_wrap.model.facts import LinkState, NetnsState
    from veth_wrap.model.linkopts import LinkOpts
    from veth_wrap.model.names import Mark

    lab = shapes.with_opts(shapes.build(["a", "b"]), LinkOpts(delay="5ms", jitter="1ms"))
    mark = Mark(lab.name, "end", "pair")

    def facts(mtu=1500):
        return {ns: NetnsState(ns, {end.ifname: LinkState(end.ifname, 2, "veth", True, "UP",
                                                          end.addresses, mark, mtu=mtu)})
                for ns, end in (("a", lab.links[0].a), ("b", lab.links[0].b))}

    same = {ns: {end: {"delay": "5000us", "jitter": "1ms"}} for ns, end in
            (("a", lab.links[0].a.ifname), ("b", lab.links[0].b.ifname))}
    assert drift.differences(lab, facts(), same) == []
    other = {"a": {lab.links[0].a.ifname: {"delay": "10ms"}}}
    found = drift.differences(lab, facts(), other)
    assert {(d.option, d.where) for d in found} == {
        ("delay", f"a:{lab.links[0].a.ifname}"), ("jitter", f"a:{lab.links[0].a.ifname}"),
        ("delay", f"b:{lab.links[0].b.ifname}"), ("jitter", f"b:{lab.links[0].b.ifname}")}
    with pytest.raises(Exception, match="delay: a:vw-b has 10ms, asked 5ms"):
        drift.refuse(lab, found)
