"""Every example in the docs runs, so what they show cannot go stale.

Each docs/*.md file (but docs/ops.md, which tests/test_opdocs.py keeps current) is
run fence by fence, in document order, in a fresh temporary directory that holds a
copy of the repository's `specs/` folder. What each fence means:

- ```python: runs; every python block of one file shares one namespace.
- ```net: a complete spec that checks without errors (what `dslnet check` reports).
  A first line `# file: NAME.net` (a relative path) also writes it there, for later
  blocks to import, load or compile; it is checked as NAME.net, other blocks as
  spec.net.
- ```net error: a spec that must have errors. When the next fence is ```text, that
  text is exactly the rendered errors (`str()` of the CompileError).
- ```console: each line starting with `$ ` is a shell command, run with the venv's
  bin first on PATH (a plain `dslnet ARGS`, without shell syntax, runs in the test
  process: `dslnet.cli.main(ARGS)`, what the console script calls, without paying
  for a second import of dslnet and torch); it must exit 0, or N when the line ends
  in `# exit: N`. The
  lines after it, up to the next `$ `, are its expected output (stdout and stderr
  together), when there are any: trailing whitespace is ignored, a line `...`
  stands for any number of lines, and `...` within a line for any text (timings).
- any other fence (```sh, ```text, ```ebnf, ...) is not run.

An op a doc registers is unregistered after it. torch, in the test process and in the
commands, runs on one thread (see one_torch_thread).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

import dslnet
from dslnet.cli import main
from dslnet.ops import registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "ops.md")
BIN = Path(sys.executable).parent  # the venv's bin: dslnet, python
COMMAND_TIMEOUT_S = 120

FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<ticks>`{3,})(?P<info>[^`]*)$")
FILE_LINE = re.compile(r"^# file: (?P<name>\S+\.net)\s*$")
EXIT_SUFFIX = re.compile(r"\s+# exit: (?P<code>\d+)\s*$")
WILDCARD = "..."
SHELL_SYNTAX = set("|&;<>()$`\\\"'*?[]#~{}")


@dataclass(frozen=True)
class Fence:
    """One fenced block of a doc: its info string split into words, and its text."""

    doc: Path
    line: int  # of the opening fence, 1-based
    words: tuple[str, ...]
    body: str

    @property
    def lang(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def where(self) -> str:
        return located(self.doc, self.line)


def located(doc: Path, line: int) -> str:
    """`docs/NAME.md:LINE`, for messages."""
    shown = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc
    return f"{shown}:{line}"


def fences(doc: Path) -> list[Fence]:
    """The fenced blocks of a markdown file, in order."""
    found: list[Fence] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, ticks = len(m["indent"]), m["ticks"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.fullmatch(rf" {{0,3}}{ticks}`*\s*", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        assert j < len(lines), f"{doc.name}:{i + 1}: fence never closed"
        text = "\n".join(body) + "\n" if body else ""
        found.append(Fence(doc, i + 1, tuple(m["info"].split()), text))
        i = j + 1
    return found


# --- net blocks ---------------------------------------------------------------------


def spec_file(fence: Fence) -> str | None:
    """NAME.net from a first line `# file: NAME.net`, checked to stay in the directory."""
    first = fence.body.split("\n", 1)[0]
    m = FILE_LINE.match(first)
    if m is None:
        return None
    path = PurePosixPath(m["name"])
    assert not path.is_absolute() and ".." not in path.parts, (
        f"{fence.where}: '# file:' takes a path inside the doc's directory, got {path}"
    )
    return str(path)


def run_net(fence: Fence, expected_error: Fence | None) -> None:
    modes = fence.words[1:]
    assert modes in ((), ("error",)), f"{fence.where}: unknown net fence mode {modes}"
    name = spec_file(fence)
    if name is not None:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(fence.body, encoding="utf-8")
    try:
        program = dslnet.loads(fence.body, filename=name or "spec.net", strict=False)
        errors = [d for d in program.check() if d.is_error]
    except dslnet.CompileError as err:  # a network that cannot be found, say
        program, errors = None, err.diagnostics
    rendered = dslnet.CompileError(errors, program.sources if program else None).render()
    if modes != ("error",):
        assert not errors, f"{fence.where}: the spec has errors:\n{rendered}"
        return
    assert errors, f"{fence.where}: a ```net error block that compiles without errors"
    if expected_error is not None:
        assert _lines(rendered) == _lines(expected_error.body), (
            f"{expected_error.where}: the error shown is not what dslnet reports now:\n{rendered}"
        )


# --- console blocks -------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    line: int  # in the doc
    text: str
    exit_code: int
    expected: tuple[str, ...]  # empty: the output is not compared


def commands(fence: Fence) -> Iterator[Command]:
    """The `$ ` lines of a console block, each with the output lines that follow it."""
    current: tuple[int, str, int] | None = None
    output: list[str] = []
    for offset, line in enumerate(fence.body.splitlines()):
        if line.startswith("$ "):
            if current is not None:
                yield Command(*current, tuple(output))
            text = line[2:]
            m = EXIT_SUFFIX.search(text)
            code = int(m["code"]) if m else 0
            current = (fence.line + 1 + offset, text[: m.start()] if m else text, code)
            output = []
        else:
            assert current is not None, (
                f"{located(fence.doc, fence.line + 1 + offset)}: output before any `$ ` command"
            )
            output.append(line)
    if current is not None:
        yield Command(*current, tuple(output))


def run_command(text: str, env: dict[str, str]) -> tuple[int, str]:
    """The exit code and output (stdout and stderr together) of a console line."""
    words = text.split()
    if words[0] == "dslnet" and not SHELL_SYNTAX & set(text):
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                code = main(words[1:])
            except SystemExit as stop:  # usage errors, as the console script exits
                code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        return code, output.getvalue()
    result = subprocess.run(
        text,
        shell=True,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    return result.returncode, result.stdout


def run_console(fence: Fence, env: dict[str, str]) -> None:
    for cmd in commands(fence):
        where = located(fence.doc, cmd.line)
        code, output = run_command(cmd.text, env)
        assert code == cmd.exit_code, (
            f"{where}: `{cmd.text}` exited {code}, not {cmd.exit_code}:\n{output}"
        )
        if cmd.expected and not output_matches(cmd.expected, output.splitlines()):
            shown = "\n".join(cmd.expected)
            raise AssertionError(
                f"{where}: `{cmd.text}` printed\n{output}\nbut the doc shows\n{shown}"
            )


def _lines(text: str | Sequence[str]) -> list[str]:
    """Lines without trailing whitespace, and without blank lines at the end."""
    lines = [line.rstrip() for line in (text.splitlines() if isinstance(text, str) else text)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def output_matches(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Line by line, trailing whitespace ignored; a `...` line matches any run of lines,
    and `...` within a line any text."""
    want, got = _lines(expected), _lines(actual)

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i] == WILDCARD:
            return match(i + 1, j) or (j < len(got) and match(i, j + 1))
        return j < len(got) and line_matches(want[i], got[j]) and match(i + 1, j + 1)

    return match(0, 0)


def line_matches(want: str, got: str) -> bool:
    if WILDCARD not in want:
        return want == got
    pattern = ".*".join(re.escape(part) for part in want.split(WILDCARD))
    return re.fullmatch(pattern, got) is not None


# --- a whole doc ------------------------------------------------------------------------


def run_doc(doc: Path) -> None:
    """Every fence of `doc`, in order, in the current directory. An op a doc registers
    is gone afterwards, so it cannot change what later tests see."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",  # as in one_torch_thread, for the commands
    }
    namespace: dict[str, Any] = {"__name__": "__main__"}
    blocks = fences(doc)
    with registry.scoped():
        for k, fence in enumerate(blocks):
            if fence.lang == "python":
                # Padded so that tracebacks give the doc's own line numbers.
                source = "\n" * fence.line + fence.body
                exec(compile(source, str(doc), "exec"), namespace)
            elif fence.lang == "net":
                after = blocks[k + 1] if k + 1 < len(blocks) else None
                run_net(fence, after if after is not None and after.lang == "text" else None)
            elif fence.lang == "console":
                run_console(fence, env)


# --- the tests -------------------------------------------------------------------------


@pytest.fixture
def doc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a copy of specs/, as a reader's checkout would."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """The examples are small: on a machine shared with other jobs, torch's threads
    waiting on busy cores make them several times slower, and on a free one two threads
    gain little."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_doc_examples_run(doc: Path, doc_dir: Path, one_torch_thread: None) -> None:
    run_doc(doc)


# --- the runner's own rules ----------------------------------------------------------------


def test_output_matching_rules() -> None:
    assert output_matches(["a", "b  "], ["a  ", "b", ""])
    assert output_matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert output_matches(["a", "...", "b"], ["a", "b"])
    assert output_matches(["..."], [])
    assert not output_matches(["a", "...", "d"], ["a", "b", "c"])
    assert not output_matches(["a"], ["a", "b"])
    assert not output_matches(["a b"], ["a  b"])
    assert output_matches(["took ... ms (x...)"], ["took 3.5 ms (x2)"])
    assert output_matches(["a ...", "c"], ["a b", "c"])
    assert not output_matches(["took ... ms"], ["took 3.5 s"])
    assert not output_matches(["a.c ..."], ["abc d"])  # only `...` is a wildcard


def test_fences_and_commands_are_read_as_documented(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "Text\n\n```net error\nnetwork N() {}\n```\n\n```text\nshown\n```\n\n"
        "```console\n$ dslnet check a.net   # exit: 1\nout 1\n...\n$ echo hi\n```\n"
        "- item\n\n   ```python\n   x = 1\n   ```\n",
        encoding="utf-8",
    )
    found = fences(doc)
    assert [(f.line, f.words) for f in found] == [
        (3, ("net", "error")),
        (7, ("text",)),
        (11, ("console",)),
        (19, ("python",)),
    ]
    assert found[3].body == "x = 1\n"
    assert list(commands(found[2])) == [
        Command(12, "dslnet check a.net", 1, ("out 1", "...")),
        Command(15, "echo hi", 0, ()),
    ]


def test_shown_errors_are_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = "network N() {\n    in x: float32[N, 4]\n    out y = x -> lienar(2)\n}\n"
    bad = Fence(tmp_path / "x.md", 1, ("net", "error"), spec)
    wrong = Fence(tmp_path / "x.md", 9, ("text",), "spec.net:3:18: error: something else\n")
    with pytest.raises(AssertionError, match="not what dslnet reports"):
        run_net(bad, wrong)
    with pytest.raises(AssertionError, match="the spec has errors"):
        run_net(Fence(bad.doc, 1, ("net",), spec), None)
    program = dslnet.loads(spec, "spec.net", strict=False)
    errors = [d for d in program.check() if d.is_error]
    right = dslnet.CompileError(errors, program.sources).render()
    assert right.startswith("spec.net:3:18: error: unknown op or block 'lienar'")
    run_net(bad, Fence(bad.doc, 9, ("text",), right))
    named = Fence(bad.doc, 1, ("net",), "# file: lib/a.net\n" + spec.replace("lienar", "linear"))
    run_net(named, None)
    assert (tmp_path / "lib" / "a.net").read_text(encoding="utf-8") == named.body


WRONG_DOCS = {
    "python": "```python\nassert 1 + 1 == 3, 'the doc is wrong'\n```\n",
    "net": "```net\nnetwork N() {\n    in x: float32[N, 4]\n    out y = x -> relu(2)\n}\n```\n",
    "net error": "```net error\nnetwork N() {\n    in x: float32[N, 4]\n    out y = x\n}\n```\n",
    "exit code": "```console\n$ python -c 'raise SystemExit(3)'\n```\n",
    "output": "```console\n$ echo one; echo two\none\nthree\n```\n",
    "expected exit": "```console\n$ python -c 'pass'  # exit: 1\n```\n",
}


@pytest.mark.parametrize("mistake", sorted(WRONG_DOCS))
def test_a_wrong_doc_fails(mistake: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    doc = tmp_path / "wrong.md"
    doc.write_text("# A doc\n\n" + WRONG_DOCS[mistake], encoding="utf-8")
    with pytest.raises(AssertionError, match=r"wrong\.md:|the doc is wrong"):
        run_doc(doc)


def test_a_right_doc_passes_and_leaves_no_op_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = tmp_path / "right.md"
    doc.write_text(
        "```python\n"
        "from dslnet.ops import NoAttrs, OpDef, register\n\n"
        "@register\n"
        "class Twice(OpDef):\n"
        "    name = 'docs_twice'\n"
        "    family = 'user'\n"
        "    def infer(self, attrs, inputs):\n"
        "        return (inputs[0],)\n"
        "    def torch_expr(self, attrs, args, inputs):\n"
        "        return f'{args[0]} * 2'\n"
        "    def onnx(self, attrs, ctx):\n"
        "        ctx.add_node('Add', [ctx.inputs[0], ctx.inputs[0]], ctx.outputs)\n"
        "```\n\n"
        "```net\n# file: twice.net\nnetwork T() {\n    in x: float32[N, 4]\n"
        "    out y = x -> docs_twice\n}\n```\n\n"
        "```console\n$ echo one; echo two; echo three\none\n...\nthree\n```\n",
        encoding="utf-8",
    )
    run_doc(doc)
    assert (tmp_path / "twice.net").is_file()
    assert registry.get("docs_twice") is None
