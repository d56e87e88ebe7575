"""What every `dslnet` command shares: exit codes, usage errors, limits,
network choice, `--set` overrides, how diagnostics are reported, atomic writes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from dslnet.api import Program
from dslnet.core.console import use_color
from dslnet.core.diagnostics import Diagnostic, SourceMap, did_you_mean
from dslnet.fileio import atomic
from dslnet.fileio.regular import why_unusable
from dslnet.frontend.limits import Limits

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A mistake on the command line (exit 2), as opposed to one in a spec (exit 1)."""


# (flag, Limits field, what it bounds): every limit a command-line flag of its own.
_LIMIT_FLAGS = (
    ("--max-nodes", "max_nodes", "IR nodes in one network"),
    ("--max-iterations", "max_iterations", "compile-time loop iterations (and list length)"),
    ("--max-steps", "max_steps", "compile-time evaluation steps in expanding one network"),
    ("--max-depth", "max_depth", "blocks nested in one another"),
    ("--max-imports", "max_imports", "files imported, directly or not"),
    ("--max-file-bytes", "max_file_bytes", "bytes of one spec file"),
    ("--max-total-bytes", "max_total_bytes", "bytes of a spec and its imports together"),
    ("--max-tensor-elements", "max_tensor_elements", "elements of one tensor"),
    ("--max-parameters", "max_parameters", "elements of the parameters and buffers of a network"),
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
            type=positive_int,
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
        help="search DIR for imports and allow files below it (repeatable): an import is "
        "looked for beside the importing file first, then in each DIR in the order given, "
        "and the first found is read; by default only files below the importing file's "
        "directory can be imported",
    )


def limits_from(args: argparse.Namespace) -> Limits:
    values = {field: getattr(args, field) for _, field, _ in _LIMIT_FLAGS}
    return Limits(**values, import_roots=tuple(args.import_roots))


def positive_int(text: str) -> int:
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
        if not os.path.lexists(path):
            raise UsageError(f"no such {what}: {path}")
        raise UsageError(f"{what} {path}: {why_unusable(path) or 'not a regular file'}")
    return Path(path)


def add_diagnostics_format(parser: argparse.ArgumentParser, to_stdout: bool = False) -> None:
    """`--format text|json`: how spec errors and warnings are reported; they go to
    stdout when they are the command's result (`check`), else to stderr."""
    parser.set_defaults(diagnostics_to_stdout=to_stdout)
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

    Both go to `stream`: stdout for `check`, whose result they are (like ruff and
    mypy), stderr for commands whose stdout is their result (`compile`, `summary`).
    text: rendered as they come, in colour when `console.use_color` says so.
    json: collected per spec file and written by `finish` as one JSON document on one
    line: {"version", "files": [{file, ok, errors, warnings}], "diagnostics": [...]}
    (see `Diagnostic.to_json`).
    """

    def __init__(self, json_format: bool, stream: TextIO) -> None:
        self.json = json_format
        self._stream = stream
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
        color = use_color(self._stream)
        for d in diags:
            print(d.render(sources, color), file=self._stream)

    @property
    def stream(self) -> TextIO:
        """Where the text (or the JSON document) goes."""
        return self._stream

    def note(self, message: str) -> None:
        """A line for the user beside the diagnostics (text only: not in the JSON)."""
        if not self.json:
            print(f"dslnet: {message}", file=self._stream)

    def finish(self) -> None:
        """Write the JSON document (text was written as it came)."""
        if self.json:
            document = {"version": 1, "files": self._files, "diagnostics": self._diagnostics}
            print(json.dumps(document), file=self._stream)


def parse_overrides(program: Program, network: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`--set name=value` pairs, converted to the declared parameter types. A malformed
    pair, a name the network (or train declaration) lacks and a parameter without a
    default left out are usage errors: the spec is fine, the command line is not."""
    decl = program.block(network) or program.train_decls.get(network)
    types = {p.name: p.type_name for p in decl.params} if decl else {}
    kind = "train declaration" if network in program.train_decls else "network"
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--set expects NAME=VALUE, got '{pair}'")
        if decl is not None and name not in types:
            have = ", ".join(types) or "none"
            raise UsageError(
                f"--set {name}: {kind} '{network}' has no parameter '{name}'"
                f"{did_you_mean(name, types)} (its parameters: {have})"
            )
        out[name] = _convert(name, text.strip(), types.get(name))
    for param in decl.params if decl else ():
        if param.default is None and param.name not in out:
            kind_of = f" ({param.type_name})" if param.type_name else ""
            raise UsageError(
                f"{kind} '{network}' needs parameter '{param.name}'{kind_of}, which has no "
                f"default: give it with --set {param.name}=..."
            )
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
    """`-n NET` (a usage error when the spec has no such network), or the only one."""
    network = pick_one(program.networks, requested, "a network with -n")
    check_network(program, network)
    return network


def check_network(program: Program, network: str) -> None:
    if network not in program.networks:
        have = ", ".join(program.networks) or "none"
        hint = did_you_mean(network, program.networks)
        raise UsageError(f"no network '{network}'{hint}; this spec has: {have}")


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


def write_atomic(path: Path, data: bytes, report: DiagnosticsReport | None = None) -> None:
    """Write beside the target, then rename: readers never see a partial file."""
    write_files({path: data}, report)


def write_files(files: Mapping[Path, bytes], report: DiagnosticsReport | None = None) -> None:
    """Write every file, or none (dslnet.fileio.atomic.write_all): on any error or an
    interrupt the targets are as they were.

    A missing directory on the way to a target is created, and each one created is
    said on stderr (`dslnet: created directory out/`, through `report` when given),
    so that a mistyped path does not go unnoticed."""
    try:
        created = atomic.write_all(files)
    except OSError as err:
        raise OutputError(Path(err.filename or "."), err) from None
    for directory in created:
        message = f"created directory {_as_given(directory, files)}{os.sep}"
        if report is not None:
            report.note(message)
        else:
            print(f"dslnet: {message}", file=sys.stderr)


def _as_given(directory: Path, files: Mapping[Path, bytes]) -> Path:
    """`directory` (a real path) spelled as the user's paths spell it, where one of
    them leads there."""
    for path in files:
        for parent in Path(path).parents:
            if parent != Path(".") and Path(os.path.realpath(parent)) == directory:
                return parent
    return directory
