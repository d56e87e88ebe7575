"""A spec is data: compiling one runs no code of its, reads no file but its imports,
and nothing in it can get into the generated Python as code (issue 9).

- imports stay below the compiled file's directory (or an --import-root), links
  out of it included;
- compiling opens no other file, reads no environment variable, starts nothing;
- hostile names (Python keywords, builtins, the generated code's own names, dunders)
  and strings (quotes, backslashes, NUL, newlines) give Python that compiles, holds
  none of them as code, keeps the spec's strings as they were, and runs, agreeing
  with the ONNX model;
- weights: only tensors are read (safetensors, torch.load(weights_only=True)), and
  weights that do not fit are refused naming the key;
- exit codes: 0 ok, 1 spec errors, 2 usage errors, 3 a bug (with a short report).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dslnet
from dslnet.backends.torch_codegen import docstring, generate_torch
from dslnet.cli import main
from dslnet.core.diagnostics import Diagnostic, Severity, SourceMap, Span
from dslnet.core.literals import format_value
from dslnet.ir.names import MODULE_ATTRIBUTES
from dslnet.ir.weights import WeightsError, init_weights, load_weights

ROOT = Path(__file__).resolve().parents[1]
SMALL = "network Net() {\n    in x: float32[N, 4]\n    out y = x -> linear(3)\n}\n"


# --- imports ------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """tmp/project/main.net (importing nothing yet) and tmp/shared/lib.net beside it."""
    (tmp_path / "project").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "lib.net").write_text(
        "block Twice() {\n    in x: [N, D]\n    out y = x -> relu -> relu\n}\n"
    )
    return tmp_path


def _importing(main_file: Path, path: str) -> Path:
    main_file.write_text(
        f'import "{path}"\nnetwork Net() {{\n    in x: float32[N, 4]\n    out y = x -> Twice\n}}\n'
    )
    return main_file


def test_imports_outside_the_spec_directory_need_an_import_root(project: Path) -> None:
    spec = _importing(project / "project" / "main.net", "../shared/lib.net")
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.load(spec)
    err = info.value.diagnostics[0]  # then 'Twice' is unknown
    assert (err.span.line, err.span.col) == (1, 1)
    assert "leaves the importing file's directory" in err.message

    allowed = dslnet.Limits(import_roots=(str(project / "shared"),))
    assert dslnet.load(spec, allowed).ir("Net").nodes

    elsewhere = dslnet.Limits(import_roots=(str(project / "project"),))
    with pytest.raises(dslnet.CompileError, match="leaves the allowed directories"):
        dslnet.load(spec, elsewhere)


def test_each_import_stays_in_its_own_importing_files_tree(project: Path) -> None:
    """project/main.net may import lib/a.net, but lib/a.net not ../b.net beside main."""
    (project / "project" / "lib").mkdir()
    (project / "project" / "b.net").write_text(
        "block Twice() {\n    in x: [N, D]\n    out y = x -> relu -> relu\n}\n"
    )
    (project / "project" / "lib" / "a.net").write_text('import "../b.net"\n')
    spec = _importing(project / "project" / "main.net", "lib/a.net")
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.load(spec)
    err = info.value.diagnostics[0]
    assert err.span.file.endswith("a.net") and (err.span.line, err.span.col) == (1, 1)
    assert "import '../b.net' leaves the importing file's directory" in err.message
    allowed = dslnet.Limits(import_roots=(str(project / "project"),))
    assert dslnet.load(spec, allowed).ir("Net").nodes


def test_the_import_root_flag(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(_importing(project / "project" / "main.net", "../shared/lib.net"))
    assert main(["check", spec]) == 1
    assert main(["check", spec, "--import-root", str(project / "shared")]) == 0
    assert main(["compile", spec, "--import-root", str(project)]) == 0
    with pytest.raises(SystemExit) as info:
        main(["check", spec, "--import-root", str(project / "missing")])
    assert info.value.code == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_symbolic_link_out_of_the_spec_directory_is_refused(project: Path) -> None:
    inside = project / "project"
    (inside / "lib.net").symlink_to(project / "shared" / "lib.net")
    spec = _importing(inside / "main.net", "lib.net")
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.load(spec)
    err = info.value.diagnostics[0]
    assert (err.span.line, err.span.col) == (1, 1)
    assert "import 'lib.net' is a symbolic link to" in err.message
    assert "outside the importing file's directory" in err.message

    (inside / "lib.net").unlink()
    (inside / "real.net").write_text((project / "shared" / "lib.net").read_text())
    (inside / "lib.net").symlink_to(inside / "real.net")  # a link that stays inside
    assert dslnet.load(spec).ir("Net").nodes


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../etc/passwd", "a\x00b.net"])
def test_hostile_import_paths_are_located_errors(project: Path, path: str) -> None:
    spec = project / "project" / "main.net"
    spec.write_bytes(f'import "{path}"\n'.encode() + SMALL.encode())
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.load(spec)
    (err,) = info.value.diagnostics
    assert (err.span.line, err.span.col) == (1, 1)
    assert "root:" not in err.message  # nothing of the file is shown


# --- no files, no environment, no processes -----------------------------------------------

WATCHER = """
import json, os, sys
import dslnet
from dslnet.ops import registry

registry.all_ops()  # dslnet's own modules and configuration: before watching
warm = dslnet.loads("network W() {\\n    in x: float32[N, 2]\\n    out y = x -> linear(2)\\n}\\n")
warm.ir("W"); warm.torch_source("W"); warm.onnx("W")

events = []

def hook(event, args):
    if event == "open":
        events.append(["open", os.fspath(args[0]) if not isinstance(args[0], int) else ""])
    elif event.split(".")[0] in ("subprocess", "socket", "ctypes", "urllib", "webbrowser") or (
        event in ("os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn")
        or event.startswith("os.exec")
    ):
        events.append([event, ""])

class Watched(dict):
    def __getitem__(self, key):
        events.append(["environ", key])
        return super().__getitem__(key)
    def get(self, key, default=None):
        events.append(["environ", key])
        return super().get(key, default)
    def __contains__(self, key):
        events.append(["environ", key])
        return super().__contains__(key)

sys.addaudithook(hook)
os.environ = Watched(os.environ)
program = dslnet.load(sys.argv[1])
for name in program.networks:
    program.ir(name)
    program.torch_source(name)
    program.onnx(name)
os.environ = dict(os.environ)
print(json.dumps(events))
"""


def test_compiling_reads_only_the_spec_and_its_imports(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.net").write_text(
        'block Head(path: str = "/etc/passwd", env: str = "HOME") {\n'
        "    in x: [N, D]\n    out y = x -> linear(2)\n}\n"
    )
    spec = tmp_path / "main.net"
    spec.write_text(
        'import "lib/blocks.net"\nconst open = "os.system"\n'
        "network Net() {\n    in x: float32[N, 4]\n    out y = x -> Head\n}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", WATCHER, str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=True,
    )
    events = json.loads(done.stdout.strip().splitlines()[-1])
    opened = {Path(path).resolve() for kind, path in events if kind == "open" and path}
    assert opened == {spec.resolve(), (tmp_path / "lib" / "blocks.net").resolve()}
    assert [e for e in events if e[0] != "open"] == []


# --- hostile names and strings ------------------------------------------------------------

# Every name a spec may use that means something to Python or to the generated code.
HOSTILE_NAMES = [
    *("class", "def", "return", "lambda", "while", "with", "yield", "try", "except"),
    *("raise", "del", "pass", "global", "assert", "from", "is", "None", "True", "False"),
    *("async", "await", "match", "case", "type", "_"),
    *("__import__", "eval", "exec", "open", "print", "compile", "getattr", "globals"),
    *("self", "torch", "nn", "F", "super", "forward", "training", "modules", "_modules"),
    *("state_dict", "causal_mask", "SinusoidalPositions", "__init__", "__class__"),
    *("__dict__", "_x", "x_", "linear1", "relu1", "as_layer1"),
]
# Spec string literals (as written in the spec) that would end a Python string early.
HOSTILE_STRINGS = [
    '"\\"\\"\\"; __import__(\\"os\\").system(\\"echo pwned\\") #"',
    '"\\\\"',
    '"a\\nb\\tc"',
    "\"'''\"",
    '"{self}"',
    '"\x00\\\\\\""',
    '"\u2028\\r"',
    '"ends with a quote\\""',
]
TEMPLATE = """\
block {H}({H}: int = 1, text: str = "x") {{
    in x: [N, D]
    y = x -> relu
    out y = y
}}
block AsInput() {{
    in {H}: [N, D]
    out y = {H} -> relu
}}
block AsLayer() {{
    in x: [N, D]
    layer {H} = linear(D)
    out y = x -> {H} -> {H} -> linear(D)
}}
block AsValue() {{
    in x: [N, D]
    {H} = x -> tanh
    out {H} = {H} + x
}}
block AsLoop() {{
    in x: [N, D]
    y = x
    for {H} in [1, 2] {{ y = y -> linear(D) }}
    out y = y
}}
network Net(note: str = {S}) {{
    in x: float32[N, 4]
    out y = x -> {H}(1, note) -> AsInput -> AsLayer -> AsValue -> AsLoop
}}
"""
FORBIDDEN_CALLS = {"__import__", "eval", "exec", "open", "compile", "getattr", "setattr"}
FORBIDDEN_CALLS |= {"globals", "locals", "vars", "input", "breakpoint", "exit", "quit"}


def _hostile_spec(i: int, name: str) -> str:
    return TEMPLATE.format(H=name, S=HOSTILE_STRINGS[i % len(HOSTILE_STRINGS)])


def _check_source(source: str, strings: set[str]) -> None:
    """No code but what dslnet writes: imports of torch only, none of the dangerous
    builtins called, no dunder names, and every docstring one of `strings`."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert [a.name for a in node.names] in (["torch"], ["torch.nn.functional"])
        elif isinstance(node, ast.ImportFrom):
            assert node.module == "torch" and [a.name for a in node.names] == ["nn"]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, ast.unparse(node)
        elif isinstance(node, ast.Name):
            assert not node.id.startswith("__"), node.id
        elif isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            assert ast.unparse(node) == "super().__init__", ast.unparse(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value in strings, node.value


@pytest.mark.parametrize(("i", "name"), list(enumerate(HOSTILE_NAMES)), ids=HOSTILE_NAMES)
def test_hostile_names_do_not_become_code(i: int, name: str) -> None:
    from dslnet.testing import assert_close, random_inputs, torch_outputs

    program = dslnet.loads(_hostile_spec(i, name), filename=f"{name}.net")
    graph = program.ir("Net")
    source = generate_torch(graph, f"{name}.net")
    compile(source, "<generated>", "exec")
    header = f"Net: generated by dslnet from {name}.net. Edit the spec, not this file."
    classes = {f"{m.block}(" for m in graph.modules.values()}
    docs = {header, f"Net(note={format_value(graph.args['note'])})"}
    docs |= {
        f"{m.block}({', '.join(f'{k}={format_value(v)}' for k, v in m.args.items())})"
        for m in graph.modules.values()
    }
    assert classes
    _check_source(source, docs)

    weights = init_weights(graph, seed=0)
    feeds = random_inputs(graph, {"N": 2})
    ours = torch_outputs(graph, weights, feeds)  # strict load: keys are the IR's names
    theirs = program.onnx("Net", weights)
    from dslnet.backends.onnx_emit import run_onnx

    got = run_onnx(theirs, feeds)
    assert_close([got[out] for out, _ in graph.outputs], ours)


def test_a_hostile_file_name_stays_in_the_header() -> None:
    graph = dslnet.loads(SMALL, "n.net").ir("Net")
    name = 'x"""\nimport os\n"\x00.net'
    source = generate_torch(graph, name)
    tree = ast.parse(source)
    assert ast.get_docstring(tree, clean=False) == (
        f"Net: generated by dslnet from {name}. Edit the spec, not this file."
    )
    assert not any(isinstance(n, ast.Import) and n.names[0].name == "os" for n in ast.walk(tree))


@pytest.mark.parametrize(
    "text",
    ['"', '""', '"""', '""""', "\\", "\\\\", 'a"', "\x00", "\n", "\r\n", "\u2028", "é\t", ""],
)
def test_docstrings_read_back_as_written(text: str) -> None:
    tree = ast.parse(docstring(text))
    value = tree.body[0]
    assert isinstance(value, ast.Expr) and isinstance(value.value, ast.Constant)
    assert value.value.value == text
    assert "\n" not in docstring(text)


def test_module_attribute_names_cover_torch() -> None:
    """A layer may not take a name nn.Module uses; the list must know them all."""
    from torch import nn

    public = {n for n in dir(nn.Module) if not n.startswith("_")}
    public |= {n for n in vars(nn.Module()) if not n.startswith("_")}
    assert public <= MODULE_ATTRIBUTES


def test_layer_names_that_collide_after_sanitising_stay_distinct() -> None:
    text = (
        "network Net() {\n    in x: float32[N, 4]\n"
        "    layer class = linear(4)\n    layer class_ = linear(4)\n"
        "    layer _x = linear(4)\n    layer x_ = linear(4)\n    layer linear1 = linear(4)\n"
        "    out y = x -> class -> class_ -> _x -> x_ -> linear(4) -> linear1\n}\n"
    )
    graph = dslnet.loads(text, "c.net").ir("Net")
    modules = sorted({p.module for p in graph.parameters.values()})
    assert modules == ["class_", "class__", "linear1", "linear6", "x_", "x__"]
    assert list(dslnet.loads(text, "c.net").torch("Net").state_dict()) == list(graph.parameters)


# --- big inputs and the errors about them ------------------------------------------------


def _peak_kb(script: str, *args: str) -> tuple[dict[str, Any], str]:
    """Run `script` in a fresh Python (its last line printed as JSON) with the peak
    resident size of that process (VmHWM) added as "kb"; and its stderr."""
    probe = (
        script + "\nimport re as _re\n"
        "_peak = int(_re.search(r'VmHWM:\\s*(\\d+) kB', open('/proc/self/status').read())[1])\n"
        "print(json.dumps({**result, 'kb': _peak}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_megabyte_string_gives_a_short_error_in_bounded_memory(tmp_path: Path) -> None:
    """A 3 MB string once took 1.3 GB to read (a regex stack per character) and
    printed 9.4 MB of error: the string is elided in the message, the line shown
    around the caret. (1.5 MB: the default max_file_bytes is 2 MiB.)"""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc to read a process's peak memory")
    spec = tmp_path / "big.net"
    big = "x" * 1_500_000
    spec.write_text(SMALL.replace("linear(3)", f'linear(3, init="{big}")'))
    script = (
        "import contextlib, io, json, sys\n"
        "from dslnet.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "    code = main(['check', sys.argv[1]])\n"
        "result = {'code': code, 'output': out.getvalue()}"
    )
    result, _ = _peak_kb(script, str(spec))
    assert result["code"] == 1
    output = result["output"]
    assert "got str 'xxxxxxxxxx" in output and "... (1500000 characters)" in output
    assert len(output) < 2000
    assert max(len(line) for line in output.splitlines()) < 400
    assert result["kb"] < 400 * 1024


def test_a_long_line_is_shown_around_the_caret() -> None:
    line = "    c = " + " + ".join(f"v{k}" for k in range(5000))
    col = line.index("v2500") + 1
    sources = SourceMap()
    sources.add("t.net", f"network N() {{\n{line}\n}}\n")
    span = Span("t.net", 2, col, 2, col + 5)
    rendered = Diagnostic(Severity.ERROR, "unknown name 'v2500'", span).render(sources)
    header, shown, caret = rendered.splitlines()
    assert header == f"t.net:2:{col}: error: unknown name 'v2500'"
    assert shown.startswith("   2 | ...") and shown.endswith("...")
    assert len(shown) < 230
    start = caret.index("^")
    assert caret[start:] == "^^^^^" and shown[start : start + 5] == "v2500"
    # The start and the end of a line are shown as they are, with one ellipsis.
    first = Diagnostic(Severity.ERROR, "x", Span("t.net", 2, 5, 2, 6)).render(sources)
    assert first.splitlines()[1] == "   2 | " + line[:200] + "..."
    end = len(line)
    last = Diagnostic(Severity.ERROR, "x", Span("t.net", 2, end, 2, end + 1)).render(sources)
    shown, caret = last.splitlines()[1:]
    assert shown == "   2 | ..." + line[-200:] and caret.endswith(" ^")
    assert len(caret) == len(shown)


def test_loads_drops_a_byte_order_mark_as_load_does(tmp_path: Path) -> None:
    path = tmp_path / "bom.net"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert dslnet.load(path).networks == ["Net"]
    assert dslnet.loads("\ufeff" + SMALL).networks == ["Net"]


def test_building_modules_again_and_again_keeps_no_source_behind() -> None:
    """Each module's source is in linecache (for tracebacks) while a module of it lives."""
    import gc
    import inspect
    import linecache

    def generated() -> int:
        return sum(1 for name in linecache.cache if str(name).startswith("<dslnet:"))

    gc.collect()
    before = generated()
    program = dslnet.loads(SMALL)
    modules = [program.torch("Net") for _ in range(50)]
    assert generated() == before + 50
    assert "def forward" in inspect.getsource(type(modules[-1]).forward)
    kept = modules[-1]
    del modules
    gc.collect()
    assert generated() == before + 1
    assert "def forward" in inspect.getsource(type(kept).forward)
    del kept
    gc.collect()
    assert generated() == before


# --- weights ------------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Any]:
    spec = tmp_path / "small.net"
    spec.write_text(SMALL)
    return spec, dslnet.load(spec).ir("Net")


def _bad_weights(graph: Any) -> dict[str, tuple[dict[str, np.ndarray[Any, Any]], str]]:
    good = init_weights(graph, seed=0)
    wrong_shape = {**good, "linear1.weight": np.zeros((4, 3), np.float32)}
    wrong_dtype = {**good, "linear1.bias": np.zeros(3, np.int32)}
    missing = {k: v for k, v in good.items() if k != "linear1.bias"}
    extra = {**good, "linear2.weight": np.zeros((3, 3), np.float32)}
    return {
        "shape": (
            wrong_shape,
            "weight 'linear1.weight' has shape [4, 3], the network needs [3, 4]",
        ),
        "dtype": (wrong_dtype, "weight 'linear1.bias' has dtype int32, the network needs float32"),
        "missing": (missing, "weight 'linear1.bias' is missing (the network needs [3])"),
        "extra": (extra, "weight 'linear2.weight' [3, 3] is not a parameter of network 'Net'"),
    }


@pytest.mark.parametrize("kind", ["shape", "dtype", "missing", "extra"])
def test_weights_that_do_not_fit_name_the_key(
    small: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    from safetensors.numpy import save_file

    spec, graph = small
    weights, message = _bad_weights(graph)[kind]
    with pytest.raises(WeightsError) as info:
        load_weights(weights, graph)
    assert info.value.problems == [message]

    file = tmp_path / f"{kind}.safetensors"
    save_file(weights, str(file))
    with pytest.raises(WeightsError, match="linear"):
        dslnet.load(spec).onnx("Net", str(file))
    out = tmp_path / "out.onnx"
    code = main(["compile", str(spec), "--emit", "onnx", "--weights", str(file), "-o", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("dslnet: error: weights do not fit network 'Net': ") and message in err
    assert not out.exists()


def test_a_pickle_in_a_torch_file_is_not_run(
    small: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    spec, graph = small
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"linear1.weight": _Payload(str(marker))}, evil)
    with pytest.raises(WeightsError, match=r"torch\.load\(weights_only=True\)"):
        load_weights(str(evil), graph)
    out = tmp_path / "out.onnx"
    code = main(["compile", str(spec), "--emit", "onnx", "--weights", str(evil), "-o", str(out)])
    assert code == 2 and "not a file of plain tensors" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()

    plain = tmp_path / "plain.pt"
    torch.save({k: torch.from_numpy(v) for k, v in init_weights(graph).items()}, plain)
    assert set(load_weights(str(plain), graph)) == set(graph.parameters)


class _Payload:
    """What a malicious checkpoint holds: unpickling it would run a command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


# --- exit codes ---------------------------------------------------------------------------


def test_exit_codes(small: tuple[Path, Any], tmp_path: Path) -> None:
    spec, _ = small
    bad = tmp_path / "bad.net"
    bad.write_text(SMALL.replace("linear(3)", "lienar(3)"))
    assert main(["check", str(spec)]) == 0
    assert main(["check", str(bad)]) == 1
    assert main(["compile", str(tmp_path / "missing.net")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["compile", str(spec), "--emit", "nonsense"])
    assert info.value.code == 2


def test_an_internal_error_is_exit_3_with_a_short_report(
    small: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dslnet.cli import compile as compile_command

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(compile_command, "pick_network", broken)
    spec, _ = small
    assert main(["compile", str(spec)]) == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "please report it" in err
    assert "RuntimeError: a bug" in err
    assert len(err.splitlines()) <= 30


def test_an_interrupt_is_exit_130(
    small: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dslnet.cli import compile as compile_command

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(compile_command, "pick_network", interrupted)
    spec, _ = small
    assert main(["compile", str(spec)]) == 130
    assert capsys.readouterr().err == "dslnet: interrupted\n"
