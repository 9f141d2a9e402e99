"""Reads of many namespaces in one process: `ip -batch -` of `netns exec NS PROGRAM -j ...`.

A Reading is what is read of a namespace (a program's words and how its output is parsed);
gather() reads several of them of many namespaces in one batch, or several batches at once,
and the root namespace (None) by running the program itself. Every read line is built here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from veth_wrap.errors import CommandFailed, failed_lines
from veth_wrap.run.runner import Runner, in_parts, quick_run

VANISHED = "Cannot open network namespace"
Ns = Optional[str]  # noqa: UP045 (a runtime alias on 3.9) a namespace; None is the root


def _same(doc: Any) -> Any:
    return doc


@dataclass(frozen=True)
class Reading:
    """What is read of one namespace: the words of a program printing JSON, and a parser."""

    words: str
    parse: Callable[[Any], Any] = _same

    def line(self, ns: str) -> str:
        """The batch line that reads it inside a named namespace."""
        return f"netns exec {ns} {self.words}"

    def argv(self) -> list[str]:
        """The command that reads it in the root namespace."""
        return self.words.split()


def gather(namespaces: Iterable[Ns], readings: Sequence[Reading], runner: Runner,
           spread: bool = False) -> dict[Ns, list]:
    """{namespace: each reading's parsed value (None where its line failed)}.

    The named namespaces take one `ip -batch` (spread: several at once for many, see
    in_parts); the root namespace one process a reading.
    """
    order = list(dict.fromkeys(namespaces))
    named = [ns for ns in order if ns is not None]
    found: dict[Ns, list] = {}
    if None in order:
        found[None] = [_parsed(r, _root_doc(r, runner)) for r in readings]
    parts = in_parts(named, lambda part: _batch(part, readings, runner)) if spread \
        else [_batch(named, readings, runner)]
    for part in parts:
        found.update(part)
    return {ns: found[ns] for ns in order if ns in found}


def quick(named: Sequence[str], reading: Reading) -> list:
    """For shell completion: the documents of a reading of the named namespaces, in one batch
    started by run's quick_run (no `sh`: completion runs on every <TAB>); those that parsed."""
    out = quick_run(["ip", "-batch", "-"], "".join(reading.line(ns) + "\n" for ns in named))
    docs: list = []
    stream = json_stream(out)
    while True:
        try:
            docs.append(next(stream))
        except (StopIteration, ValueError):  # the end, or a half-written answer
            return docs


def _batch(named: list[str], readings: Sequence[Reading], runner: Runner) -> dict[Ns, list]:
    if not named:
        return {}
    docs = read_docs([r.line(ns) for ns in named for r in readings], runner, strict=False)
    size = len(readings)
    return {ns: [_parsed(r, d) for r, d in zip(readings, docs[size * i:size * (i + 1)])]
            for i, ns in enumerate(named)}


def _parsed(reading: Reading, doc: Any) -> Any:
    return None if doc is None else reading.parse(doc)


def _root_doc(reading: Reading, runner: Runner) -> Any:
    """One reading of the root namespace, None when the program failed."""
    result = runner.run(reading.argv(), check=False)
    return loads(result.stdout) if result.returncode == 0 else None


def loads(text: str, empty: Any = None) -> Any:
    """One JSON document; empty for no text, or text that is not JSON."""
    try:
        return json.loads(text) if text.strip() else empty
    except json.JSONDecodeError:
        return empty


def json_stream(text: str) -> Iterator:
    """The JSON documents printed one after another by an `ip -batch` of `ip -j` commands."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        doc, pos = decoder.raw_decode(text, pos)
        yield doc


def read_docs(lines: Sequence[str], runner: Runner, strict: bool = True) -> list:
    """One JSON document per batch line (None where the line could not run).

    Each line is `netns exec NS PROGRAM -j ...`. strict: any failure raises, except that of
    namespaces another process deleted meanwhile, whose lines are dropped and the rest read
    again. Otherwise `ip -force` runs every line and a failed one gives None.
    """
    lines = list(lines)
    if not lines:
        return []
    if not strict:
        return _tolerant(lines, runner)
    for attempt in range(2):
        try:
            out = runner.run(["ip", "-batch", "-"], stdin=_text(lines)).stdout
        except CommandFailed as exc:
            # Namespaces come and go while others work: read again without those gone, or,
            # once, when the failure said nothing (one caught half-made by `ip netns add`).
            still = set(runner.netns(bound=True))
            kept = [ln for ln in lines if ln.split()[2] in still]
            if len(kept) < len(lines):
                docs = dict(zip(kept, read_docs(kept, runner)))
                return [docs.get(line) for line in lines]
            if attempt or (exc.stderr and VANISHED not in exc.stderr):
                raise
            continue
        return _aligned(out, set(), len(lines))
    return []  # not reached: the second failure raised


def _tolerant(lines: list[str], runner: Runner) -> list:
    """Every line's document, None for those that failed: after a failure, the rest again.

    Never `ip -force` with `netns exec` lines: when the namespace of such a line is gone,
    iproute2's forked child fails to enter it and goes on running the rest of the batch
    itself, forking again at every later line that fails the same way.
    """
    docs: list = []
    while len(docs) < len(lines):
        rest = lines[len(docs):]
        result = runner.run(["ip", "-batch", "-"], stdin=_text(rest), check=False)
        failed = failed_lines(result.stderr)
        if result.returncode == 0 or not failed:
            return docs + _aligned(result.stdout, set(), len(rest)) if result.returncode == 0 \
                else docs + [None] * len(rest)
        good = failed[0] - 1
        docs += _aligned(result.stdout, set(), good) + [None]
    return docs


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _aligned(stdout: str, failed: set[int], count: int) -> list:
    docs = json_stream(stdout)
    return [None if number in failed else next(docs, None) for number in range(1, count + 1)]


