"""Loading a spec: files and imports, the global namespace, expansion and checking.

`Spec` is the front end's result: the declarations of a spec and its imports, ready to
expand into IR (`ir`) or to check (`check`). The public `dslnet.Program` (dslnet/api.py)
wraps one and adds what drives the passes and backends.
"""

from __future__ import annotations

import codecs
import functools
import gc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from dslnet.core.diagnostics import CompileError, Diagnostic, Diagnostics, Note, SourceMap, Span
from dslnet.fileio import FileProblem, open_regular
from dslnet.frontend import ast
from dslnet.frontend.expand import Expander
from dslnet.frontend.limits import Limits as Limits  # re-exported: dslnet.Limits
from dslnet.frontend.limits import Work
from dslnet.frontend.parser import parse
from dslnet.frontend.resolve import check_block, check_recursion, check_train
from dslnet.frontend.values import Callee, is_poison
from dslnet.frontend.vocabulary import BUILTINS
from dslnet.ir.graph import Graph
from dslnet.ops import registry

if TYPE_CHECKING:  # train declarations are lowered when a spec has some
    from dslnet.frontend.train.plan import TrainPlan

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Compiling allocates many small objects that all stay alive; the cyclic
    collector would re-scan them again and again (superlinear in spec size)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _without_gc(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _gc_paused():
            return fn(*args, **kwargs)

    return wrapper


class Spec:
    """A loaded spec: its blocks, networks and constants, ready to expand."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.sources = SourceMap()
        self.diags = Diagnostics()
        self.decls: dict[str, ast.BlockDecl] = {}
        self.train_decls: dict[str, ast.TrainDecl] = {}
        self._consts: dict[str, Any] = {}
        self._const_decls: dict[str, ast.ConstDecl] = {}
        self._order: list[str] = []  # networks and blocks in file order
        self.broken: set[str] = set()
        self.unresolved: set[Span] = set()  # names reported unknown before expansion
        # Files with an import that failed: a name unknown there may be one it would
        # have supplied, so none is reported (the import's error says it all).
        self.incomplete_files: set[str] = set()
        # Train declarations with a syntax error inside: a statement the parser dropped
        # (`out loss = ...`) is not reported missing as well.
        self.damaged_trains: set[str] = set()
        self.modules: list[ast.Module] = []  # every file read, imports first

    # --- what is in it ----------------------------------------------------------------

    @property
    def networks(self) -> list[str]:
        return [n for n in self._order if self.decls[n].kind == "network"]

    @property
    def blocks(self) -> list[str]:
        return [n for n in self._order if self.decls[n].kind == "block"]

    @property
    def trainings(self) -> list[str]:
        """The `train` declarations, in file order."""
        return list(self.train_decls)

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diags.sorted() if not d.is_error]

    def block(self, name: str) -> ast.BlockDecl | None:
        return self.decls.get(name)

    def has_const(self, name: str) -> bool:
        return name in self._consts

    def const(self, name: str) -> Any:
        return self._consts[name]

    def const_decl(self, name: str) -> ast.ConstDecl | None:
        """The declaration of constant `name`, evaluated or not yet."""
        return self._const_decls.get(name)

    def callee(self, name: str) -> Callee | None:
        if name in self.decls:
            return Callee("block", name)
        if registry.get(name) is not None:
            return Callee("op", name)
        if name in BUILTINS:
            return Callee("builtin", name)
        return None

    def visible_names(self) -> list[str]:
        return [*self.decls, *self._consts, *registry.names(), *BUILTINS]

    # --- compiling ------------------------------------------------------------------------

    @_without_gc
    def ir(self, network: str, **params: Any) -> Graph:
        """Expand `network` with `params` overriding its defaults; CompileError on errors."""
        diags = Diagnostics()
        graph = self._expand(network, params, diags)
        if graph is None or diags.has_errors:
            raise CompileError(diags.errors(), self.sources)
        return graph

    @_without_gc
    def training(self, name: str, **params: Any) -> TrainPlan:
        """The `train` declaration `name` lowered (a TrainPlan): a graph per step and
        the checked settings; `params` override its parameters."""
        from dslnet.frontend.train.lower import lower

        decl = self.train_decls.get(name)
        if decl is None:
            raise self._not_found("train declaration", name, self.trainings)
        if self.diags.has_errors:
            raise CompileError(self.diags.errors(), self.sources)
        return lower(self, decl, dict(params))

    def _expand(
        self,
        network: str,
        params: Mapping[str, Any],
        diags: Diagnostics,
        work: Work | None = None,
    ) -> Graph | None:
        decl = self.decls.get(network)
        if decl is None or decl.kind != "network":
            raise self._not_found("network", network, self.networks)
        if network in self.broken:
            return None
        expander = Expander(self, diags, self.limits, work)
        return expander.network(decl, dict(params), decl.name_span)

    def _not_found(self, what: str, name: str, have: list[str]) -> CompileError:
        from dslnet.core.diagnostics import did_you_mean

        hint = did_you_mean(name, have)
        message = f"no {what} '{name}'{hint}; this spec has: {', '.join(have) or 'none'}"
        return CompileError(
            [Diagnostic(_error(), message, Span.unknown(self.main_file()))], self.sources
        )

    @_without_gc
    def check(self) -> list[Diagnostic]:
        """Every diagnostic of the spec: load-time ones, then each network at its defaults.

        Networks are expanded even after load-time errors (every independent error
        in one run); what those errors broke expands silently to nothing.
        """
        diags = Diagnostics()
        for d in self.diags.sorted():
            diags.add(d)
        work = Work()  # one max_steps budget for all: a spec of many networks is bounded
        for name in self.networks:
            if all(p.default is not None for p in self.decls[name].params):
                self._expand(name, {}, diags, work)
        for name, decl in self.train_decls.items():
            if name not in self.broken and all(p.default is not None for p in decl.params):
                from dslnet.frontend.train.lower import lower_into

                lower_into(self, decl, {}, diags, work)
        return diags.sorted()

    def checked(self) -> Spec:
        """This program when `check` finds no error in it; else CompileError with all
        that `check` reports (warnings too), so that a command building one network
        (`compile`, `summary`) refuses a spec with the same errors as `dslnet check`."""
        found = self.check()
        if any(d.is_error for d in found):
            raise CompileError(found, self.sources)
        return self

    def main_file(self) -> str:
        """The spec's own file (or the name given to its text)."""
        return next(iter(self.sources.texts), "<spec>")


def _error() -> Any:
    from dslnet.core.diagnostics import Severity

    return Severity.ERROR


class _Loader:
    def __init__(self, program: Spec) -> None:
        self.program = program
        self.loaded: set[Path] = set()
        self.imports = 0  # files read for import statements
        self.total_bytes = 0  # of the spec and every file read for it, for max_total_bytes
        self.modules: list[ast.Module] = []
        self.broken: dict[str, set[str]] = {}
        self.syntax_error_lines: dict[str, set[int]] = {}

    def load_text(self, text: str, file: str, real: Path | None, stack: tuple[Path, ...]) -> None:
        program = self.program
        self.total_bytes += _size(text)
        program.sources.add(file, text)
        before = set(program.diags.errors())
        intact: set[int] = set()
        module, broken = parse(text, file, program.diags, intact)
        self.syntax_error_lines[file] = {
            d.span.line for d in program.diags.errors() if d not in before
        } - intact
        self.broken[file] = broken
        program.broken |= broken
        for decl in module.decls:
            if isinstance(decl, ast.ImportDecl):
                self.load_import(decl, real, stack)
        self.modules.append(module)

    def load_import(
        self, decl: ast.ImportDecl, importer: Path | None, stack: tuple[Path, ...]
    ) -> None:
        errors = len(self.program.diags.errors())
        self.import_file(decl, importer, stack)
        if len(self.program.diags.errors()) > errors:
            self.program.incomplete_files.add(decl.span.file)

    def import_file(
        self, decl: ast.ImportDecl, importer: Path | None, stack: tuple[Path, ...]
    ) -> None:
        diags = self.program.diags
        limits = self.program.limits
        base = importer.parent if importer is not None else Path.cwd()
        try:
            roots = limits.allowed_roots(base.resolve())  # the importing file's own tree
            # Relative to the importing file first, then in each import root in order.
            candidates = [Path(os.path.normpath(d / decl.path)) for d in (base, *roots[1:])]
            written, target = _first_found(candidates)
        except (OSError, ValueError, RuntimeError) as err:  # a NUL byte, a link loop
            shown = decl.path.encode("unicode_escape").decode("ascii")  # a NUL made visible
            diags.error(f"import '{shown}' is not a usable file path ({err})", decl.span)
            return
        if not any(target.is_relative_to(root) for root in roots):
            diags.error(_outside_message(decl.path, written, target, roots), decl.span)
            return
        if target in stack:
            cycle = " -> ".join(p.name for p in (*stack[stack.index(target) :], target))
            diags.error(f"import cycle: {cycle}", decl.span)
            return
        if target in self.loaded:
            return
        if _is_dir(target):
            diags.error(
                f"import '{decl.path}' is a directory ({_shown(target)}); import a .net file in it",
                decl.span,
            )
            return
        if not _is_file(target):
            looked = ", ".join(dict.fromkeys(_shown(c.resolve()) for c in candidates))
            diags.error(f"import '{decl.path}' not found (looked for {looked})", decl.span)
            return
        if self.imports >= limits.max_imports:
            diags.error(
                f"more than {limits.max_imports} imported files (raise the limit with "
                f"--max-imports)",
                decl.span,
            )
            return
        self.imports += 1
        self.loaded.add(target)
        # Checked again on the file opened: a link swapped in since cannot lead out.
        text = _read(target, diags, decl.span, limits.max_file_bytes, roots)
        if text is None:
            return
        total = self.total_bytes + _size(text)
        if total > limits.max_total_bytes:
            # Each file is bounded, but 256 of them would still take hours to check.
            diags.error(
                f"this import brings the spec and its imports to {total} bytes, over the "
                f"limit of {limits.max_total_bytes} (raise it with --max-total-bytes)",
                decl.span,
            )
            return
        self.load_text(text, _shown(target), target, (*stack, target))

    def finish(self) -> None:
        """Build the namespace, evaluate constants, run the static checks."""
        program = self.program
        diags = program.diags
        program.modules = list(self.modules)
        first: dict[str, Span] = {}
        const_decls: list[ast.ConstDecl] = []
        for module in self.modules:
            for decl in module.decls:
                if isinstance(decl, ast.ImportDecl):
                    continue
                name = decl.name
                span = decl.span if isinstance(decl, ast.ConstDecl) else decl.name_span
                if name in first or registry.get(name) is not None:
                    note = [Note("first defined here", first[name])] if name in first else []
                    what = "an op" if name not in first else "defined"
                    diags.error(f"duplicate name '{name}': it is already {what}", span, note)
                    continue
                first[name] = span
                if isinstance(decl, ast.BlockDecl):
                    program.decls[name] = decl
                    program._order.append(name)
                elif isinstance(decl, ast.TrainDecl):
                    program.train_decls[name] = decl
                else:
                    const_decls.append(decl)
        expander = Expander(program, diags, program.limits)
        program._const_decls = {c.name: c for c in const_decls}
        for c in const_decls:
            try:
                value = expander.constant(c.value, {})
            except Exception as err:  # EvalError: located
                from dslnet.frontend.values import EvalError

                if not isinstance(err, EvalError):
                    raise
                if err.message:
                    diags.error(err.message, err.span)
                value = None
            if value is not None and not is_poison(value):
                program._consts[c.name] = value
            else:
                program.broken.add(c.name)
        for decl in program.decls.values():
            if decl.kind == "block":  # a network's are checked when it is expanded
                expander.check_defaults(decl)
        global_names = set(program.visible_names()) | program.broken
        for decl in program.decls.values():
            lines = self.syntax_error_lines.get(decl.span.file, set())
            check_block(
                decl,
                diags,
                global_names,
                program.visible_names,
                self.broken.get(decl.span.file, set()),
                damaged=any(decl.span.line <= n <= decl.span.end_line for n in lines),
                unresolved=program.unresolved,
                quiet_unknown=decl.span.file in program.incomplete_files,
            )
        for train in program.train_decls.values():
            lines = self.syntax_error_lines.get(train.span.file, set())
            damaged = any(train.span.line <= n <= train.span.end_line for n in lines)
            if damaged:
                program.damaged_trains.add(train.name)
            check_train(
                train,
                diags,
                global_names,
                program.visible_names,
                self.broken.get(train.span.file, set()),
                damaged=damaged,
                unresolved=program.unresolved,
                quiet_unknown=train.span.file in program.incomplete_files,
            )
        check_recursion(program.decls, diags)


def _read(
    path: Path,
    diags: Diagnostics,
    span: Span | None,
    max_bytes: int,
    roots: Sequence[Path] | None = None,
) -> str | None:
    """The text of a spec file; a located error when it is unreadable, too big or not UTF-8.
    Never more than `max_bytes` + 1 bytes are read, whatever the file claims to hold.
    With `roots` (an import), the file opened must be a regular file really below one
    of them, and the text is read from that same open file."""
    where = span or Span.unknown(_shown(path))
    try:
        with path.open("rb") if roots is None else open_regular(path, roots) as f:
            data = f.read(max_bytes + 1)  # bounded whatever the file (or pipe) holds
    except FileProblem as err:
        diags.error(f"cannot read {_shown(path)}: {err.problem}", where)
        return None
    except OSError as err:
        diags.error(f"cannot read {_shown(path)}: {err.strerror or err}", where)
        return None
    if len(data) > max_bytes:
        diags.error(
            f"{_shown(path)} is over the limit of {max_bytes} bytes for a spec file "
            f"(raise it with --max-file-bytes)",
            where,
        )
        return None
    try:
        # A byte-order mark, as some editors save, is dropped.
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as err:
        diags.error(f"{_shown(path)} is not UTF-8 text (byte {err.start})", where)
        return None


def _first_found(candidates: Sequence[Path]) -> tuple[Path, Path]:
    """The first candidate path that is a file, as written and resolved (symbolic links
    followed: where it really is); the first candidate when none is, so that the
    errors about it are today's."""
    for written in candidates:
        target = written.resolve()
        if _is_file(target):
            return written, target
    return candidates[0], candidates[0].resolve()


def _size(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates, which a str may hold, count too)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, say: not a file that can be imported
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _outside_message(written: str, lexical: Path, target: Path, roots: Sequence[Path]) -> str:
    """Why an import was refused: it leaves the allowed directories, or a symbolic link
    inside them leads out."""
    where = ", ".join(_shown(r) for r in roots)
    several = len(roots) > 1
    allowed = (
        f"the allowed directories ({where})"
        if several
        else f"the importing file's directory ({where})"
    )
    if any(lexical.is_relative_to(root) for root in roots):
        return (
            f"import '{written}' is a symbolic link to {_shown(target)}, outside {allowed}; "
            f"links out of it are not followed (--import-root DIR allows another directory)"
        )
    return f"import '{written}' leaves {allowed}; only files below it can be imported"


def _shown(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when below it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


@_without_gc
def load_spec(
    path: str | os.PathLike[str], limits: Limits | None = None, *, strict: bool = True
) -> Spec:
    """Load a `.net` file and its imports. Raises CompileError when it has errors."""
    program = Spec(limits or Limits())
    real = Path(path).resolve()
    loader = _Loader(program)
    loader.loaded.add(real)
    text = _read(real, program.diags, None, program.limits.max_file_bytes)
    if text is not None:
        loader.load_text(text, str(path), real, (real,))
        loader.finish()
    if strict and program.diags.has_errors:
        raise CompileError(program.diags.errors(), program.sources)
    return program


@_without_gc
def loads_spec(
    text: str, filename: str = "<string>", limits: Limits | None = None, *, strict: bool = True
) -> Spec:
    """Load spec text; imports resolve relative to `filename`'s directory."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as `load_spec` drops it
    program = Spec(limits or Limits())
    real = Path(filename).resolve()
    loader = _Loader(program)
    size = _size(text)
    if size > program.limits.max_file_bytes:
        program.diags.error(
            f"the spec text is {size} bytes, over the limit of {program.limits.max_file_bytes} "
            f"(raise it with --max-file-bytes)",
            Span.unknown(filename),
        )
    else:
        loader.load_text(text, filename, real, (real,))
        loader.finish()
    if strict and program.diags.has_errors:
        raise CompileError(program.diags.errors(), program.sources)
    return program
