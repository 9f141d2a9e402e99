"""The console examples of README.md and docs/: found by Sybil, run on real namespaces, compared.

A ```console block holds `$ ` lines, each followed by the output the page shows; a `$ ` line
ending in `# exit N` expects that status (0 otherwise). A `$ ` line that opens a here-document
(`cat > FILE <<'EOF'`) takes the lines up to its terminator as part of the command, so a page
writes the files its examples need where the reader sees them. Each line runs through `sh -c` as a
user would paste it, stdout and stderr together, in the page's order, one page a session. The
page's namespaces (ns0, ns1, ...) get a per-run name and lab files `--prefix`, so nothing meets
what else is on the machine; the output is turned back into the page's names and both sides are
normalised (times, PIDs, MACs, addresses derived from names, table widths) before they are
compared. An output line that is only `...` stands for any lines. A page keeps the files it
writes in `/tmp/nsN-WORD`: a run names that folder like its namespaces, and removes it after.

`python3 tests/docexamples.py [PAGE ...]` runs pages the same way, with the page's own names
(it refuses when one is taken), and writes back the blocks that drifted; `--check` compares
only, with names of its own, and `--path` runs vethwrap as installed on that PATH.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

ROOT = Path(__file__).resolve().parent.parent
EXIT_NOTE = re.compile(r"\s+#\s*exit (\d+)\s*$")
HEREDOC = re.compile(r"(?<!<)<<-?(?!<)\s*(['\"]?)(\w+)\1")  # a here-document's terminator word
# commands that read a lab file and change the kernel: their labs get the run's --prefix
PREFIXED = ("up", "down", "show", "pingall", "destroy")
ANY_LINES = "\x00"
# what changes from run to run, machine to machine: (pattern, what both sides become)
VOLATILE = [
    (r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?", "<timestamp>"),
    (r"\bpid \d+", "pid <pid>"),
    (r'"(pid|ifindex|uptime_s)": [\d.]+', r'"\1": <n>'),
    (r'"python": "[^"]*"', '"python": <v>'),
    (r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b", "<mac>"),
    (r"\bfe80::[0-9a-f:]+", "fe80::<x>"),
    (r"\bfd[0-9a-f]{2}:[0-9a-f:]*:[0-9a-f:]*", "fd<ula>"),
    (r"\b\d\d:\d\d:\d\d(?:\.\d+)?\b", "<time>"),
    (r"\b\d\d/\w{3}/\d{4}\b", "<date>"),
    (r"(?<![\w.:])\d+\.\d+(?![\w.:])", "<n>"),
    (r"\b\d+(?:\.\d+)?(?:ms|s|m|h)\b", "<t>"),
    (r"\b(id|seq) \d+", r"\1 <n>"),
    (r"\b\d+ packet\(s\) dropped", "<n> packet(s) dropped"),  # counters of live traffic
    (r"@if\d+", "@if<n>"),
    (r"\[\d{6,}\]", "[<inode>]"),
    (r"\bvni \d+|\bvxlan \d+", "vxlan <vni>"),
    (r"/proc/\d+/", "/proc/<pid>/"),
    (r"(│\s*\S+\s*│\s*)\d{2,7}(\s*│)", r"\1<pid>\2"),  # the pid column of `ps`
    (r"\bwith the \d+ in the table now", "with the <n> in the table now"),  # the host's neighbours
    (r"\(\d+ namespaces searched\)", "(<n> namespaces searched)"),  # the host's namespaces
]
BOX = re.compile("[\u2500-\u257f]")  # rich's tables and panels, the drawings' lines


@dataclass
class Names:
    """The page's names and the ones a run uses instead (none: the page's own)."""

    stem: str = ""

    def local(self, command: str) -> str:
        """A `$ ` line with the run's names."""
        if not self.stem:
            return command
        command = re.sub(r"\bns(\d+)\b", lambda m: f"{self.stem}{m.group(1)}", command)
        words = command.split()
        if len(words) > 2 and words[0] == "vethwrap" and words[1] in PREFIXED and "-f" in words:
            command = _before_redirect(command, f" --prefix {self.stem}-")
        return command

    def page(self, output: str) -> str:
        """Output with the page's names back."""
        if not self.stem:
            return output
        output = output.replace(f"{self.stem}-", "")
        return re.sub(rf"{self.stem}(\d+)", r"ns\1", output)


def _before_redirect(command: str, extra: str) -> str:
    """Append options to the vethwrap part of a line, before a pipe or a redirection."""
    cut = re.search(r"\s[|<>]", command)
    return command + extra if not cut else command[:cut.start()] + extra + command[cut.start():]


@dataclass
class Step:
    """One `$ ` line of a block: the command, the status and the output the page shows."""

    line: str
    status: int
    shown: list[str]
    actual: list[str] = field(default_factory=list)
    actual_status: int = 0

    @property
    def command(self) -> str:
        first, sep, body = self.line.partition("\n")  # the note is on the first line
        return EXIT_NOTE.sub("", first) + sep + body

    def matches(self) -> bool:
        return self.actual_status == self.status and same(self.shown, self.actual)


def steps(source: str) -> list[Step]:
    """The `$ ` lines of a console block, each with the lines shown after it."""
    found: list[Step] = []
    until = None  # the terminator of the here-document being read
    for text in source.splitlines():
        if until is not None:
            found[-1].line += "\n" + text
            until = None if text == until else until
        elif text.startswith("$ "):
            note = EXIT_NOTE.search(text)
            found.append(Step(text[2:], int(note.group(1)) if note else 0, []))
            opened = HEREDOC.search(EXIT_NOTE.sub("", text))
            until = opened.group(2) if opened else None
        elif found:
            found[-1].shown.append(text)
        elif text.strip():
            raise ValueError(f"a console block must start with a '$ ' line: {text!r}")
    return found


def normalise(lines: list[str]) -> str:
    """What must stay the same: the words, with volatile values and drawing lines taken out."""
    text = "\n".join(ANY_LINES if line.strip() == "..." else line for line in lines)
    for pattern, replacement in VOLATILE:
        text = re.sub(pattern, replacement, text)
    return " ".join(" ".join(_pid_order(text.split("\n"))).split())


def _pid_order(lines: list[str]) -> list[str]:
    """Lines, box lines taken out; each run of lines naming a PID sorted by its words.

    Processes are listed in PID order, and PIDs wrap (at 32768 on many hosts): the order of
    two processes started seconds apart varies from run to run, their lines do not.
    """
    words = [" ".join(BOX.sub(" ", line).split()) for line in lines]
    found: list[str] = []
    run: list[str] = []
    for line in words + [""]:
        if "<pid>" in line:
            run.append(line)
            continue
        found += sorted(run) + [line]
        run = []
    return found[:-1]


def same(shown: list[str], actual: list[str]) -> bool:
    """True when the output matches the page's, `...` lines matching any lines."""
    parts = normalise(shown).split(ANY_LINES)
    pattern = r"\s*.*?\s*".join(re.escape(part.strip()) for part in parts)
    return re.fullmatch(pattern, normalise(actual), flags=re.S) is not None


@dataclass
class Session:
    """Runs one page's commands in order, in a shell environment where `vethwrap` is this code."""

    names: Names
    env: dict
    ran: list[Step] = field(default_factory=list)

    def evaluate(self, example) -> str | None:
        """Sybil's evaluator: run the block's lines; the differences, or None."""
        block = steps(example.parsed)
        for step in block:
            self.run(step)
        example.namespace.setdefault("blocks", []).append((example, block))
        drifted = [diff(step) for step in block if not step.matches()]
        return "\n".join(drifted) or None

    def run(self, step: Step) -> None:
        done = subprocess.run(["sh", "-c", f"exec 2>&1; {self.names.local(step.command)}"],
                              cwd=ROOT, env=self.env, stdout=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        printed = self.names.page(done.stdout).rstrip("\n").splitlines()
        step.actual = [line.rstrip() for line in printed]
        step.actual_status = done.returncode
        self.ran.append(step)


def diff(step: Step) -> str:
    """A drifted step, as the page shows it against what it printed."""
    head = f"$ {step.line}"
    if step.actual_status != step.status:
        head += f"\n(exit status {step.actual_status}, the page says {step.status})"
    lines = difflib.unified_diff(step.shown, step.actual, "page", "printed", lineterm="")
    return "\n".join([head, *lines])


def shell_env(bin_dir: Path, columns: int = 100) -> dict:
    """The environment the pages' commands run in: this checkout's vethwrap first on PATH.

    The pages are written at 100 columns; a run with longer names gets more, so that a table
    that fits on the page fits there too (panels are compared by their words, not their lines).
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "vethwrap"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m veth_wrap "$@"\n')
    script.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", NO_COLOR="1",
                COLUMNS=str(columns), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", LC_ALL="C.UTF-8")


def pages() -> list[Path]:
    """README.md and every page of the site; drafts are not pages yet."""
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "drafts" not in p.parts)
    return [ROOT / "README.md", *docs]


def run_page(page: Path, session: Session) -> tuple[list, list[str]]:
    """Evaluate every console block of a page in order: ([(example, steps)], failures)."""
    document = Sybil([CodeBlockParser("console", session.evaluate)], path=str(ROOT)).parse(page)
    failures = []
    for example in document:
        try:
            example.evaluate()
        except AssertionError as exc:
            failures.append(str(exc))
    return document.namespace.get("blocks", []), failures


def namespaces_of(prefixes: tuple[str, ...]) -> list[str]:
    """The namespaces whose names start with one of these (exact prefixes of this run)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = (line.split()[0] for line in listed.splitlines() if line.strip())
    return [name for name in names if name.startswith(prefixes)]


def cleanup(stem: str, env: dict) -> list[str]:
    """Remove what a page left with the run's names, by exact name; returns those names."""
    for folder in Path("/tmp").glob(f"{stem}[0-9]*-*"):  # a page's files, named by the run
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
    left = namespaces_of((stem, f"vethwrap-{stem}"))
    if left:
        subprocess.run(["vethwrap", "destroy", "-q", *left], env=env, capture_output=True,
                       timeout=120)
    for name in namespaces_of(tuple(left)):
        if name in left:  # not vethwrap's: stop what we started there, by PID, then delete it
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return left


def rewrite(page: Path, blocks: list) -> int:
    """Write the printed output in place of what drifted; returns the steps rewritten."""
    text, changed = page.read_text(), 0
    for example, block in reversed(blocks):
        lines, keep = [], all(step.matches() for step in block)  # a block is rewritten whole
        for step in block:
            changed += not step.matches()
            note = "" if keep or not step.actual_status else f"  # exit {step.actual_status}"
            first, sep, body = (step.line if keep else step.command).partition("\n")
            lines.append(f"$ {first}{note}{sep}{body}")
            lines.extend(step.shown if keep else step.actual)
        start = example.start + text[example.start:].index("\n") + 1
        end = example.start + text[example.start:example.end].rindex("```")
        text = text[:start] + "\n".join(lines) + "\n" + text[end:]
    page.write_text(text)
    return changed


def _arguments(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser(description="Run the pages' console examples.")
    parser.add_argument("pages", nargs="*", help="pages to run (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="names of this run instead of the page's; print what drifted, "
                        "write nothing, exit 1 on a drift")
    parser.add_argument("--path", help="PATH for the commands, with vethwrap as installed there "
                        "(default: this checkout's vethwrap first on PATH)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run pages; write back what drifted, or with --check only say so."""
    import tempfile
    import uuid

    args = _arguments(argv)
    stem = f"vr{uuid.uuid4().hex[:5]}" if args.check else ""
    taken = [name for name in namespaces_of(("ns",)) if re.fullmatch(r"ns\d+", name)]
    if taken and not stem:
        print(f"namespaces {', '.join(taken)} exist: the pages use these names", file=sys.stderr)
        return 2
    env = shell_env(Path(tempfile.mkdtemp()) / "bin", columns=160 if stem else 100)
    if args.path:  # the installed vethwrap, with its own copy of the package
        env["PATH"] = args.path
        env.pop("PYTHONPATH", None)
    drifted = 0
    for page in [Path(p).resolve() for p in args.pages] or pages():
        session = Session(Names(stem), env)
        blocks, failures = run_page(page, session)
        left = cleanup(stem, env) if stem else []
        drifted += len(failures) + len(left)
        for problem in [*failures, *([f"left behind: {left}"] if left else [])]:
            print(problem, end="\n\n")
        done = "compared" if args.check else f"{rewrite(page, blocks)} rewritten"
        print(f"{page.relative_to(ROOT)}: {len(session.ran)} command(s), {done}")
    return 1 if args.check and drifted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
