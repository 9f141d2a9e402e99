"""Hostile lab files: bombs, devices, FIFOs, huge or deep or non-UTF-8 input, refused fast."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess import vethwrap

from veth_wrap.errors import UsageError
from veth_wrap.model import labfile, safeyaml

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "examples" / "chain.yaml").read_text()


def _bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs: each anchor is a list of `width` aliases of the one before."""
    lines = ["name: x", "namespaces: [a, b]", "l0: &l0 [lol, lol, lol, lol, lol, lol, lol]"]
    for k in range(1, levels + 1):
        lines.append(f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _make(kind: str, tmp: Path) -> str:
    """A hostile input of one kind, as a path to give to -f."""
    path = tmp / f"{kind}.yaml"
    makers = {
        "bomb": lambda: path.write_text(_bomb()),
        "flow-bomb": lambda: path.write_text(
            "a: &a [x,x,x,x,x,x,x,x]\n" + "".join(
                f"{c}: &{c} {{k: *{p}, l: *{p}, m: *{p}, n: *{p}, o: *{p}, p: *{p}}}\n"
                for p, c in zip("abcdefghij", "bcdefghijk"))),
        "deep-flow": lambda: path.write_text("namespaces: " + "[" * 200_000 + "]" * 200_000),
        "deep-block": lambda: path.write_text("".join(" " * k + f"k{k}:\n" for k in range(500))),
        "deep-mapping": lambda: path.write_text("{a: " * 100_000 + "1" + "}" * 100_000),
        "many-values": lambda: path.write_text("namespaces: [" + ",".join(["n"] * 400_000) + "]"),
        "many-keys": lambda: path.write_text("".join(f"k{i}: {i}\n" for i in range(60_000))),
        "non-utf8": lambda: path.write_bytes(GOOD.encode() + b"# caf\xe9\n"),
        "utf16": lambda: path.write_bytes(GOOD.encode("utf-16")),
        "nul": lambda: path.write_bytes(b"name: x\x00\nnamespaces: [a, b]\n"),
        "binary": lambda: path.write_bytes(os.urandom(4096)),
        "sparse-67MB": lambda: _sparse(path, 67 << 20),
        "just-over-cap": lambda: path.write_text("#" * safeyaml.MAX_BYTES + "\n"),
        "two-documents": lambda: path.write_text(GOOD + "---\n" + GOOD),
        "python-tag": lambda: path.write_text("name: !!python/object/apply:os.system [id]\n"),
        "set-tag": lambda: path.write_text("name: x\nnamespaces: !!set {a, b}\n"),
        "huge-int": lambda: path.write_text("name: x\nsubnet: " + "9" * 100_000 + "\n"),
        "self-alias": lambda: path.write_text("a: &a [1, *a]\n"),
        "list-key": lambda: path.write_text("? [a, b]\n: c\n"),
        "fifo": lambda: os.mkfifo(path),
        "directory": lambda: path.mkdir(),
        "missing": lambda: None,
    }
    if kind == "dev-zero":
        return "/dev/zero"
    makers[kind]()
    return str(path)


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        handle.write(b"name: x\nnamespaces: [a, b]\n")
        handle.truncate(size)


HOSTILE = {  # kind -> words the one line must hold
    "bomb": "aliases expand to more than 20,000 values",
    "flow-bomb": "aliases expand to more than 20,000 values",
    "deep-flow": "nested more than 32 levels deep",
    "deep-block": "nested more than 32 levels deep",
    "deep-mapping": "nested more than 32 levels deep",
    "many-values": "more than 20,000 values",
    "many-keys": "more than 20,000 values",
    "non-utf8": "not UTF-8 text: byte 0xe9 at offset",
    "utf16": "not UTF-8 text: byte 0xff at offset 0",
    "nul": "not valid YAML",
    "binary": "",
    "sparse-67MB": "larger than the 1 MiB limit",
    "just-over-cap": "larger than the 1 MiB limit",
    "two-documents": "one YAML document",
    "python-tag": "python/object",
    "set-tag": "the tag tag:yaml.org,2002:set is not used",
    "huge-int": "cannot be read as tag:yaml.org,2002:int",
    "self-alias": "alias *a names no anchor defined before it",
    "list-key": "a key must be a plain word",
    "fifo": "is a FIFO (named pipe), not a regular file",
    "directory": "is a directory, not a regular file",
    "dev-zero": "is a character device, not a regular file",
    "missing": "No such file or directory",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_is_refused_fast_by_the_reader(kind, tmp_path):
    path = _make(kind, tmp_path)
    started = time.process_time()
    with pytest.raises(UsageError) as caught:
        labfile.load(path)
    took = time.process_time() - started
    assert isinstance(caught.value, labfile.LabFileError)
    assert caught.value.exit_code == 2 and "\n" not in caught.value.line()
    assert HOSTILE[kind] in caught.value.line(), caught.value.line()
    assert took < 1.0, f"{kind}: {took:.2f}s"


@pytest.mark.parametrize("kind", ["bomb", "deep-flow", "nul", "python-tag", "huge-int"])
def test_without_libyaml_the_same_refusals(kind, tmp_path, monkeypatch):
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)  # PyYAML's pure-Python parser
    assert labfile.load(ROOT / "examples" / "chain.yaml").name == "chain"
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.load(_make(kind, tmp_path))
    assert HOSTILE[kind] in caught.value.line()


def test_non_utf8_names_line_and_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: x\nnamespaces: [a, b]\n# caf\xe9\n")
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.load(path)
    assert caught.value.problems == [f"{path}:3: is not UTF-8 text: byte 0xe9 at offset 32"]


def test_at_most_cap_plus_one_bytes_are_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.yaml"
    _sparse(path, 67 << 20)
    real, read = os.read, []

    def counting(fd, size):
        data = real(fd, size)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    with pytest.raises(labfile.LabFileError, match="1 MiB"):
        labfile.load(path)
    assert sum(read) == safeyaml.MAX_BYTES + 1


def test_a_file_at_the_cap_is_read(tmp_path):
    path = tmp_path / "padded.yaml"
    path.write_text(GOOD + "#" * (safeyaml.MAX_BYTES - len(GOOD) - 1) + "\n")
    assert path.stat().st_size == safeyaml.MAX_BYTES
    assert labfile.load(path).name == "chain"


def test_aliases_that_stay_small_are_fine():
    text = GOOD.replace("namespaces: [a, r, b]", "namespaces: &all [a, r, b]")
    text += "forwarding: *all\n" if "forwarding" not in text else ""
    lab = labfile.parse(text.replace("forwarding: [r]", "forwarding: *all"), "alias.yaml")
    assert set(lab.forwarding) == {"a", "r", "b"}


def test_lines_and_duplicate_keys_survive_the_composer():
    with pytest.raises(labfile.LabFileError) as caught:
        labfile.parse("name: x\nnamespaces: [a, b]\nname: y\nlinks: [[a, c]]\n", "d.yaml")
    assert caught.value.problems == [
        "d.yaml:3: name: key given twice (keep one)",
        "d.yaml:4: links[0].between[1]: namespace 'c' is not listed under namespaces "
        "(list it there, or fix the name)"]


def test_more_links_than_the_default_subnet_holds_is_one_problem():
    members = [f"n{i}" for i in range(70)]
    text = f"name: x\nnamespaces: [{', '.join(members)}]\nlinks:\n" + "".join(
        f"  - [{a}, {b}]\n" for a, b in zip(members, members[1:]))
    with pytest.raises(labfile.LabFileError, match="has no room for 69 more links"):
        labfile.parse(text, "wide.yaml")


def _big_lab(count: int) -> str:
    members = [f"n{i}" for i in range(count)]
    return ("name: big\nsubnet: 10.0.0.0/8\nnamespaces: [" + ", ".join(members) + "]\nlinks:\n"
            + "".join(f"  - [{a}, {b}]\n" for a, b in zip(members, members[1:]))
            + "routes:\n  n0:\n" + "".join(f"    - {{to: 192.168.{i // 250}.{i % 250}/32, "
                                          "via: 10.0.0.2}\n" for i in range(count * 3 // 4)))


def _calls(work) -> int:
    """How many Python and C calls work() makes: a measure of its cost that no load moves."""
    made = 0

    def count(frame, event, arg):
        nonlocal made
        made += event in ("call", "c_call")

    sys.setprofile(count)
    try:
        work()
    finally:
        sys.setprofile(None)
    return made


def test_big_valid_lab_files_take_linear_time():
    """Checks stay linear: four times the lab costs about four times the calls, not sixteen."""
    calls = {count: _calls(lambda count=count: labfile.parse(_big_lab(count), "big.yaml"))
             for count in (500, 2000)}
    assert calls[2000] < 5 * calls[500], calls
    lab = labfile.parse(_big_lab(2000), "big.yaml")
    assert len(lab.links) == 1999 and len(lab.routes) == 1500


def _only_our_errors(text_or_bytes) -> None:
    try:
        if isinstance(text_or_bytes, bytes):
            text = text_or_bytes.decode("utf-8")
        else:
            text = text_or_bytes
        labfile.parse(text, "fuzz.yaml", prefix="f")
    except UnicodeDecodeError:
        return  # the reader refuses these before parse; test_random_bytes covers them
    except UsageError as exc:
        assert "\n" not in exc.line()


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=20), st.sampled_from(["a", "b", "r", "10.0.0.1/30",
                                                            "10.0.0.0/24", "50ms", "1%"]))
_trees = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12) | st.sampled_from(
        sorted(labfile.KEYS | labfile.LINK_KEYS)), inner, max_size=6)), max_leaves=20)
FUZZ = settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(_trees)
def test_random_yaml_documents_raise_only_our_errors(tree):
    _only_our_errors(yaml.safe_dump(tree))


@settings(FUZZ, max_examples=100)  # generating these is what takes the time
@given(st.dictionaries(st.sampled_from(sorted(labfile.KEYS)), _trees, max_size=7))
def test_random_lab_shaped_documents_raise_only_our_errors(doc):
    _only_our_errors(yaml.safe_dump(doc, default_flow_style=None))


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_random_text_raises_only_our_errors(text):
    _only_our_errors(text)


@FUZZ
@given(st.integers(0, len(GOOD)), st.text(alphabet="[]{}&*!|>-:?,'\"#%@` \n\ta0", max_size=12))
def test_a_good_file_with_yaml_punctuation_inserted_raises_only_our_errors(at, insert):
    _only_our_errors(GOOD[:at] + insert + GOOD[at:])


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_through_the_reader_raise_only_our_errors(data):
    with tempfile.NamedTemporaryFile(suffix=".yaml") as handle:
        handle.write(data)
        handle.flush()
        try:
            labfile.load(handle.name)
        except UsageError as exc:
            assert "\n" not in exc.line()


STDIN_CASES = {  # name -> (bytes for stdin, or a file to redirect from; words expected)
    "stdin-zero": ("/dev/zero", "larger than the 1 MiB limit"),
    "stdin-67MB": (b"#" * (67 << 20), "larger than the 1 MiB limit"),
    "stdin-bomb": (_bomb().encode(), "aliases expand"),
    "stdin-latin1": (b"name: caf\xe9\n", "not UTF-8 text"),
}
COMMANDS = (("validate",), ("graph",), ("up", "--dry-run"), ("up",), ("down",))
EVERY_COMMAND = {"bomb", "deep-flow", "sparse-67MB", "fifo", "dev-zero", "non-utf8", "directory"}
STDIN_COMMANDS = (("validate",), ("up",))  # what the multi-host work pipes into


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], stdin) -> tuple[subprocess.CompletedProcess, float]:
    """The finished command, and the CPU seconds it used (wall time depends on the load)."""
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    started = _cpu_of_children()
    if isinstance(stdin, str):
        with open(stdin, "rb") as source:
            proc = subprocess.run([sys.executable, "-m", "veth_wrap", *args], stdin=source,
                                  capture_output=True, env=env, timeout=60, cwd=ROOT)
    else:
        proc = _feed([sys.executable, "-m", "veth_wrap", *args], stdin or b"", env)
    took = _cpu_of_children() - started
    return subprocess.CompletedProcess(args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode()), took


def _feed(argv: list[str], data: bytes, env: dict) -> subprocess.CompletedProcess:
    """Run argv with data on stdin; the reader may stop early, so a broken pipe is expected."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        out, err = proc.communicate(data, timeout=60)
    except BrokenPipeError:
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _startup() -> float:
    """The CPU a refusal without parsing costs here: the interpreter and typer."""
    return min(_run(["validate", "-f", "/nonexistent/x.yaml"], None)[1] for _ in range(2))


@pytest.mark.integration
def test_every_command_refuses_every_hostile_input_in_a_second(tmp_path, unchanged):
    base = _startup()
    cases = [(_make(kind, tmp_path / kind), None, words,
              COMMANDS if kind in EVERY_COMMAND else COMMANDS[:1])
             for kind, words in HOSTILE.items() if not (tmp_path / kind).mkdir()]
    cases += [("-", stdin, words, STDIN_COMMANDS) for stdin, words in STDIN_CASES.values()]
    slowest, runs = 0.0, 0
    for path, stdin, words, commands in cases:
        for command in commands:
            runs += 1
            result, took = _run([*command, "-f", path], stdin)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2, (command, path, result.stderr)
            assert len(lines) == 1 and "Traceback" not in result.stderr, (command, path, lines)
            assert words in lines[0], (command, path, lines[0])
            assert took < 1.0, (command, path, f"{took:.2f}s of CPU, startup {base:.2f}s")
            slowest = max(slowest, took)
    print(f"\n{len(cases)} hostile inputs, {runs} runs: slowest {slowest:.2f}s "
          f"of CPU, startup {base:.2f}s")


@pytest.mark.integration
def test_up_and_validate_read_a_lab_from_stdin(netns, unchanged):
    prefix = netns.name()
    netns.names.extend(prefix + ns for ns in ("ns0", "ns1"))
    text = (ROOT / "examples" / "pair.yaml").read_text()
    valid = vethwrap("validate", "-f", "-", "--prefix", prefix, input=text)
    assert valid.returncode == 0 and valid.stdout.startswith("<stdin>: lab"), valid.stderr
    drawn = vethwrap("graph", "-f", "-", input=text)
    assert drawn.returncode == 0 and "ns0" in drawn.stdout
    built = vethwrap("up", "-f", "-", "--prefix", prefix, input=text)
    assert built.returncode == 0, built.stderr
    again = vethwrap("up", "-f", "-", "--prefix", prefix, input=text)
    assert again.returncode == 0 and "nothing changed" in again.stderr
    gone = vethwrap("down", "-f", "-", "--prefix", prefix, input=text)
    assert gone.returncode == 0, gone.stderr
