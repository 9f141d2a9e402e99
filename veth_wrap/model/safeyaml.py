"""Bounded reading of YAML from files a user names: capped size, regular files, bounded nodes.

A lab file comes from anywhere: a typo'd path (/dev/zero, a FIFO), a download, a generator
gone wrong. Every step here is bounded before it starts, so that any input is refused or
read within a second: at most MAX_BYTES + 1 bytes are read, a FIFO or device is never read
(nor opened, where stat tells first), and PyYAML's safe loader composes the nodes under a
budget that counts values (aliases included, at their expanded size), depth and tags, with
PyYAML's own marks for the lines.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

from veth_wrap.errors import UsageError

MAX_BYTES = 1 << 20  # 1 MiB: a lab of 1,000 namespaces is about 60 KiB
MAX_VALUES = 20_000  # values and keys: a lab of 1,000 namespaces has about 7,000
MAX_DEPTH = 32  # a lab file nests four levels deep
STDIN = "-"
_CHUNK = 1 << 16

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_ERRORS = (ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError)


class Refused(UsageError):
    """Input refused before or while parsing; line is where in the text (None: the file)."""

    def __init__(self, message: str, hint: str, line: Optional[int] = None) -> None:
        super().__init__(message, hint)
        self.line = line


def size_text(count: int) -> str:
    """A byte count as people say it: 1 MiB, 64 KiB, 12 bytes."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


def read_text(path: str, cap: int = MAX_BYTES) -> str:
    """The UTF-8 text of a regular file (or of stdin for '-'), refused above cap bytes."""
    if path == STDIN:
        data = _read_stdin(cap)
    else:
        fd = _open_regular(path)
        try:
            data = _read_at_most(fd, cap + 1)
        except OSError as exc:
            raise Refused(f"cannot read it: {exc.strerror}", "check the path") from None
        finally:
            os.close(fd)
    if len(data) > cap:
        raise Refused(f"is larger than the {size_text(cap)} limit for lab files",
                      "check that this is the lab file meant; a big lab fits in 100 KiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Refused(f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}",
                      "save the file as UTF-8", line) from None


def _open_regular(path: str) -> int:
    """An fd of the regular file at path; stat first so that no device is ever opened."""
    try:
        _refuse_odd(os.stat(path).st_mode)
        # O_NONBLOCK: should a FIFO take the file's place after the stat, open cannot block
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"cannot be read: {exc.strerror}",
                      "give the path of a YAML lab file, or - to read it from stdin") from None
    try:
        _refuse_odd(os.fstat(fd).st_mode)
    except Refused:
        os.close(fd)
        raise
    return fd


def _refuse_odd(mode: int) -> None:
    for test, kind in _KINDS:
        if test(mode):
            raise Refused(f"is {kind}, not a regular file",
                          "give the path of a YAML lab file, or - to read it from stdin")


def _read_stdin(cap: int) -> bytes:
    """Stdin as it comes (a pipe, a file, a terminal), at most cap + 1 bytes of it."""
    try:
        fd = sys.stdin.fileno() if sys.stdin is not None else 0
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise Refused("is a directory, not a regular file", "pipe a YAML lab file in")
        return _read_at_most(fd, cap + 1)
    except (OSError, ValueError) as exc:
        raise Refused(f"cannot be read: {getattr(exc, 'strerror', None) or exc}",
                      "pipe a YAML lab file in, or give its path") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(_CHUNK, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


@dataclass
class Composed:
    """Plain data from one YAML document, the line of each value, and keys given twice."""

    data: Any = None
    lines: dict = field(default_factory=dict)  # where (tuple of keys and indexes) -> line
    twice: list = field(default_factory=list)  # (where, line) of each repeated key


def compose(text: str, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> Composed:
    """Plain data (dicts, lists, scalars) from YAML text, refusing what would not be bounded."""
    import yaml

    loader = None
    try:
        # the pure-Python reader checks every character when made: inside the try
        loader = _loader_class()(text, max_values, max_depth)
        node = loader.get_single_node()
        return _Plain(loader).run(node)
    except yaml.YAMLError as exc:
        raise _refused(text, exc) from None
    finally:
        if loader is not None:
            loader.dispose()


def _refused(text: str, exc) -> Refused:
    """PyYAML's own error as a refusal, at PyYAML's own mark."""
    if isinstance(exc, Refused):
        return exc
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    line = mark.line + 1 if mark else _reader_line(text, exc)
    if "single document" in str(getattr(exc, "context", "")):
        return Refused("a lab file holds one YAML document, this has more",
                       "remove the second '---' and what follows, or split the file", line)
    return Refused(f"not valid YAML: {problem}", "fix the file and run again", line)


def _reader_line(text: str, exc) -> int:
    """The line of a reader's error (an unprintable character), which has no mark."""
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def _loader_class():
    """PyYAML's safe loader (libyaml's where present), its nodes composed under a budget."""
    import yaml
    from yaml.composer import Composer

    safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    # libyaml's loader composes in C, out of the budget's reach: PyYAML's composer goes first
    composer = () if issubclass(safe, Composer) else (Composer,)

    class Bounded(_Budget, *composer, safe):
        """Events from the fastest safe loader; nodes from PyYAML's own composer, counted."""

        def __init__(self, text: str, max_values: int, max_depth: int) -> None:
            safe.__init__(self, text)
            Composer.__init__(self)
            _Budget.__init__(self, max_values, max_depth)

    return Bounded


class _Budget:
    """A composer mixin: counts values (aliases at their expanded size), depth and tags."""

    def __init__(self, max_values: int, max_depth: int) -> None:
        self.max_values, self.max_depth = max_values, max_depth
        self.count = self.depth = 0
        self.sizes: dict[str, int] = {}  # anchor -> values it expands to

    def compose_node(self, parent, index):
        """PyYAML's compose_node, refusing before a value passes the budget."""
        import yaml

        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.sizes:
                _refuse(event, f"alias *{event.anchor} names no anchor defined before it",
                        f"define &{event.anchor} first (an alias cannot refer to its own "
                        "container)")
            self._counted(event, self.sizes[event.anchor])
            return super().compose_node(parent, index)
        self._check(event)
        start, self.depth = self.count, self.depth + 1
        self._counted(event, 1)
        node = super().compose_node(parent, index)
        self.depth -= 1
        if event.anchor:
            self.sizes[event.anchor] = self.count - start
        return node

    def _check(self, event) -> None:
        import yaml

        if isinstance(event, yaml.ScalarEvent):
            return
        if self.depth >= self.max_depth:
            _refuse(event, f"values nested more than {self.max_depth} levels deep",
                    "a lab file nests four levels deep; check the file")
        if event.tag not in _COLLECTION_TAGS:
            _refuse(event, f"the tag {event.tag} is not used in lab files",
                    "remove it; plain lists and mappings are enough")

    def _counted(self, event, size: int) -> None:
        self.count += size
        if self.count > self.max_values:
            what = "its aliases expand to" if self.sizes else "it has"
            _refuse(event, f"{what} more than {self.max_values:,} values",
                    "a lab of 1,000 namespaces has about 7,000; write values out "
                    "instead of nesting aliases, or split the lab")


def _refuse(event_or_node, message: str, hint: str) -> None:
    raise Refused(message, hint, event_or_node.start_mark.line + 1)


class _Plain:
    """PyYAML nodes -> plain data with the line of every value; keys must be words."""

    def __init__(self, loader) -> None:
        self.loader = loader
        self.result = Composed()

    def run(self, node) -> Composed:
        """The whole document (None when it is empty)."""
        if node is not None:
            self.result.data = self._value(node, ())
        return self.result

    def _value(self, node, where: tuple) -> Any:
        import yaml

        self.result.lines[where] = node.start_mark.line + 1
        if isinstance(node, yaml.SequenceNode):
            return [self._value(item, where + (i,)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, where)
        return self._scalar(node)

    def _mapping(self, node, where: tuple) -> dict:
        import yaml

        value: dict = {}
        for key_node, item in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                _refuse(key_node, "a key must be a plain word, not a list, mapping or alias",
                        "write keys as words, e.g. name: demo")
            key = self._scalar(key_node)
            if key in value:
                self.result.twice.append((where + (key,), key_node.start_mark.line + 1))
            value[key] = self._value(item, where + (key,))
        return value

    def _scalar(self, node) -> Any:
        if node.tag == _STR_TAG:  # most values: no constructor needed
            return node.value
        try:
            return self.loader.construct_object(node)
        except _SCALAR_ERRORS:
            _refuse(node, f"{node.value[:40]!r} cannot be read as {node.tag}",
                    "remove the tag or fix the value")
        finally:
            self.loader.constructed_objects.clear()
