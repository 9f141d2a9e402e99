"""Bounded reading of YAML from files a user names: capped size, regular files, bounded nodes.

A lab file comes from anywhere: a typo'd path (/dev/zero, a FIFO), a download, a generator
gone wrong. Every step here is bounded before it starts, so that any input is refused or
read within a second: at most MAX_BYTES + 1 bytes are read, a FIFO or device is never read
(nor opened, where stat tells first), and the YAML events are turned into plain data by an
iterative composer that counts values (aliases included, at their expanded size) and depth.
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
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        return _Composer(loader, max_values, max_depth).run()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise Refused(f"not valid YAML: {problem}", "fix the file and run again",
                      mark.line + 1 if mark else _reader_line(text, exc)) from None
    finally:
        if loader is not None:
            loader.dispose()


def _reader_line(text: str, exc) -> int:
    """The line of a reader's error (an unprintable character), which has no mark."""
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


@dataclass
class _Frame:
    """An open collection: where it sits, its container, and (a mapping) the pending key."""

    where: tuple
    value: Any
    anchor: Optional[str]
    start: int  # values counted when it opened: its size is the count at its end less this
    key: Optional[str] = None


class _Composer:
    """Events -> plain data, iteratively: no recursion for deep input, a budget for aliases."""

    def __init__(self, loader, max_values: int, max_depth: int) -> None:
        self.loader, self.max_values, self.max_depth = loader, max_values, max_depth
        self.result = Composed()
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, expanded size)
        self.count = 0
        self.documents = 0

    def run(self) -> Composed:
        """Consume every event of the stream."""
        import yaml

        handlers = {yaml.ScalarEvent: self._scalar, yaml.AliasEvent: self._alias,
                    yaml.SequenceStartEvent: self._open, yaml.MappingStartEvent: self._open,
                    yaml.SequenceEndEvent: self._close, yaml.MappingEndEvent: self._close,
                    yaml.DocumentStartEvent: self._document}
        while self.loader.check_event():
            event = self.loader.get_event()
            handler = handlers.get(type(event))
            if handler:
                handler(event)
        return self.result

    def _document(self, event) -> None:
        self.documents += 1
        if self.documents > 1:
            self._refuse(event, "a lab file holds one YAML document, this has more",
                         "remove the second '---' and what follows, or split the file")

    def _refuse(self, event, message: str, hint: str) -> None:
        raise Refused(message, hint, event.start_mark.line + 1)

    def _counted(self, event, size: int) -> None:
        self.count += size
        if self.count > self.max_values:
            what = "its aliases expand to" if self.anchors else "it has"
            self._refuse(event, f"{what} more than {self.max_values:,} values",
                         "a lab of 1,000 namespaces has about 7,000; write values out "
                         "instead of nesting aliases, or split the lab")

    def _place(self, event, is_collection: bool) -> Optional[tuple]:
        """Where the next value goes; None when it is a mapping's key (it is kept instead)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return top.where + (len(top.value),)
        if top.key is None:
            if is_collection or not hasattr(event, "value"):
                self._refuse(event, "a key must be a plain word, not a list, mapping or alias",
                             "write keys as words, e.g. name: demo")
            self._counted(event, 1)
            top.key = event.value
            return None
        return top.where + (top.key,)

    def _attach(self, where: tuple, value: Any, line: int) -> None:
        self.result.lines[where] = line
        if not self.stack:
            self.result.data = value
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
            return
        if top.key in top.value:
            self.result.twice.append((where, line))
        top.value[top.key] = value
        top.key = None

    def _scalar(self, event) -> None:
        where = self._place(event, False)
        if where is None:
            return
        self._counted(event, 1)
        value = self._construct(event)
        if event.anchor:
            self.anchors[event.anchor] = (value, 1)
        self._attach(where, value, event.start_mark.line + 1)

    def _construct(self, event) -> Any:
        import yaml

        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR_TAG:  # most values: no constructor needed
            return event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self.loader.construct_object(node)
        except _SCALAR_ERRORS:
            self._refuse(event, f"{event.value[:40]!r} cannot be read as {tag}",
                         "remove the tag or fix the value")
        finally:
            self.loader.constructed_objects.clear()

    def _alias(self, event) -> None:
        where = self._place(event, False)
        found = self.anchors.get(event.anchor)
        if found is None:
            self._refuse(event, f"alias *{event.anchor} names no anchor defined before it",
                         f"define &{event.anchor} first (an alias cannot refer to its own "
                         "container)")
        self._counted(event, found[1])
        self._attach(where, found[0], event.start_mark.line + 1)

    def _open(self, event) -> None:
        import yaml

        where = self._place(event, True)
        if len(self.stack) >= self.max_depth:
            self._refuse(event, f"values nested more than {self.max_depth} levels deep",
                         "a lab file nests four levels deep; check the file")
        if event.tag not in _COLLECTION_TAGS:
            self._refuse(event, f"the tag {event.tag} is not used in lab files",
                         "remove it; plain lists and mappings are enough")
        self._counted(event, 1)
        value: Any = [] if isinstance(event, yaml.SequenceStartEvent) else {}
        self._attach(where, value, event.start_mark.line + 1)
        self.stack.append(_Frame(where, value, event.anchor, self.count - 1))

    def _close(self, event) -> None:
        frame = self.stack.pop()
        if frame.anchor:
            self.anchors[frame.anchor] = (frame.value, self.count - frame.start)
