"""What every `dslnet` command shares: exit codes, usage errors, limits,
network choice, `--set` overrides, how diagnostics are reported, atomic writes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from dslnet.console import use_color
from dslnet.diagnostics import Diagnostic, SourceMap
from dslnet.frontend.limits import Limits
from dslnet.frontend.loader import Program

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A mistake on the command line (exit 2), as opposed to one in a spec (exit 1)."""


# (flag, Limits field, what it bounds): every limit a command-line flag of its own.
_LIMIT_FLAGS = (
    ("--max-nodes", "max_nodes", "IR nodes in one network"),
    ("--max-iterations", "max_iterations", "compile-time loop iterations (and list length)"),
    ("--max-depth", "max_depth", "blocks nested in one another"),
    ("--max-imports", "max_imports", "files imported, directly or not"),
    ("--max-file-bytes", "max_file_bytes", "bytes of one spec file"),
    ("--max-tensor-elements", "max_tensor_elements", "elements of one tensor"),
    ("--max-parameters", "max_parameters", "learned parameters of a network"),
)


def add_limits(parser: argparse.ArgumentParser) -> None:
    """The expansion limits (`dslnet.Limits`) and `--import-root`."""
    group = parser.add_argument_group(
        "limits",
        "bounds on what compiling a spec may do; the defaults are far above any "
        "real network, and an error names the flag to raise",
    )
    defaults = Limits()
    for flag, field, what in _LIMIT_FLAGS:
        default = getattr(defaults, field)
        group.add_argument(
            flag,
            dest=field,
            type=_positive_int,
            default=default,
            metavar="N",
            help=f"at most N {what} (default {default})",
        )
    group.add_argument(
        "--import-root",
        dest="import_roots",
        action="append",
        default=[],
        type=_directory,
        metavar="DIR",
        help="also allow imports of files below DIR (repeatable); by default only files "
        "below the importing file's directory can be imported",
    )


def limits_from(args: argparse.Namespace) -> Limits:
    values = {field: getattr(args, field) for _, field, _ in _LIMIT_FLAGS}
    return Limits(**values, import_roots=tuple(args.import_roots))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _directory(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {text}")
    return str(Path(text).resolve())


def add_network_choice(parser: argparse.ArgumentParser, help: str) -> None:
    """`-n NET` and repeatable `--set NAME=VALUE`."""
    parser.add_argument("-n", "--network", help=help)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a network parameter (repeatable)",
    )


def require_file(path: str, what: str = "file") -> Path:
    if not Path(path).is_file():
        raise UsageError(f"no such {what}: {path}")
    return Path(path)


def add_diagnostics_format(parser: argparse.ArgumentParser, json_to_stdout: bool = False) -> None:
    """`--format text|json`: how spec errors and warnings are reported; the JSON
    document goes to stdout when it is the command's result (`check`), else stderr."""
    parser.set_defaults(diagnostics_to_stdout=json_to_stdout)
    parser.add_argument(
        "--format",
        dest="diagnostics_format",
        choices=["text", "json"],
        default="text",
        help="spec errors and warnings as text (default) or as one JSON document "
        "(for editors and tools)",
    )


class DiagnosticsReport:
    """Where a command's spec errors and warnings go.

    text: rendered on stderr as they come, in colour when `console.use_color` says so.
    json: collected per spec file and written by `finish` as one JSON document on one
    line: {"version", "files": [{file, ok, errors, warnings}], "diagnostics": [...]}
    (see `Diagnostic.to_json`). It goes to `json_stream`: stdout for `check`, whose
    result it is, stderr for commands whose stdout is their result.
    """

    def __init__(self, json_format: bool, json_stream: TextIO) -> None:
        self.json = json_format
        self._stream = json_stream
        self._files: list[dict[str, Any]] = []
        self._diagnostics: list[dict[str, Any]] = []

    @staticmethod
    def for_args(args: argparse.Namespace) -> DiagnosticsReport:
        json_format = getattr(args, "diagnostics_format", "text") == "json"
        to_stdout = getattr(args, "diagnostics_to_stdout", False)
        return DiagnosticsReport(json_format, sys.stdout if to_stdout else sys.stderr)

    def start(self, file: str) -> None:
        """Diagnostics added from now on count for the spec `file`."""
        self._files.append({"file": file, "ok": True, "errors": 0, "warnings": 0})

    def add(self, diags: Sequence[Diagnostic], sources: SourceMap) -> None:
        if self._files:
            entry = self._files[-1]
            errors = sum(d.is_error for d in diags)
            entry["errors"] += errors
            entry["warnings"] += len(diags) - errors
            entry["ok"] = entry["errors"] == 0
        if self.json:
            self._diagnostics += [d.to_json() for d in diags]
            return
        color = use_color(sys.stderr)
        for d in diags:
            print(d.render(sources, color), file=sys.stderr)

    def finish(self) -> None:
        """Write the JSON document (text was written as it came)."""
        if self.json:
            document = {"version": 1, "files": self._files, "diagnostics": self._diagnostics}
            print(json.dumps(document), file=self._stream)


def parse_overrides(program: Program, network: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`--set name=value` pairs, converted to the declared parameter types."""
    decl = program.block(network) or program.train_decls.get(network)
    types = {p.name: p.type_name for p in decl.params} if decl else {}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--set expects NAME=VALUE, got '{pair}'")
        out[name.strip()] = _convert(name.strip(), text.strip(), types.get(name.strip()))
    return out


def _convert(name: str, text: str, kind: str | None) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind == "str":
            return text
    except ValueError:
        raise UsageError(f"--set {name}: expected {kind}, got '{text}'") from None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def pick_network(program: Program, requested: str | None) -> str:
    return pick_one(program.networks, requested, "a network with -n")


def pick_one(have: Sequence[str], requested: str | None, how: str) -> str:
    """`requested`, or the only one of `have`; else a usage error saying `how` to choose."""
    if requested:
        return requested
    if len(have) == 1:
        return have[0]
    raise UsageError(f"choose {how} (this spec has: {', '.join(have) or 'none'})")


class OutputError(OSError, UsageError):
    """An output that cannot be written (no permission, disk full): a usage error (exit 2),
    and still an OSError, with the system's `strerror`, for callers that catch those."""

    def __init__(self, path: Path, err: OSError) -> None:
        super().__init__(err.errno, err.strerror or str(err))
        self.filename = str(path)

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target, then rename: readers never see a partial file."""
    write_files({path: data})


def write_files(files: Mapping[Path, bytes]) -> None:
    """Write every file, or none: each goes to a temporary file beside its target, and
    only when all are complete are they renamed over the targets. On any error or an
    interrupt the temporary files are removed and the targets are as they were.
    A target that is a symbolic link is written where the link points."""
    written: list[tuple[str, Path]] = []  # (temporary file, target)
    current = Path()  # the file being written, for the error
    try:
        for path, data in files.items():
            current = Path(os.path.realpath(path))
            written.append((_write_temporary(current, data), current))
        for tmp, target in written:
            current = target
            os.replace(tmp, target)
    except OSError as err:
        _remove([tmp for tmp, _ in written])
        raise OutputError(current, err) from None
    except BaseException:
        _remove([tmp for tmp, _ in written])
        raise


def _write_temporary(target: Path, data: bytes) -> str:
    """`data` in a new file beside `target`, flushed to disk; its name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes the file private (0600): give it the mode the file had, or the
        # one a plain open() would give under the umask.
        umask = os.umask(0)
        os.umask(umask)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the bytes do
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _remove(paths: Sequence[str]) -> None:
    for tmp in paths:
        Path(tmp).unlink(missing_ok=True)
