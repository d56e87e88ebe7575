"""What loading and expanding a spec may do: sizes it may reach, files it may read.

A spec is data, possibly from someone else: compiling it must end quickly with a
located error however it is written, never exhaust memory, never read files other
than its own imports. Every bound is far above what a real network needs, and
each has a command-line flag to raise it (named in the error that hits it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dslnet.core.symbolic import SymExpr

# A symbolic size written longer than this is a runaway product, not a shape. (Ints,
# strings and lists are bounded where they are computed: dslnet.frontend.values.arith.)
MAX_SYMBOLIC_CHARS = 2000


@dataclass(frozen=True)
class Limits:
    """Bounds on loading and expansion; no real network comes near the defaults.

    max_nodes: IR nodes in one network.
    max_iterations: compile-time loop iterations in one network (and list length).
    max_steps: compile-time work in expanding one network (all of them together in
        `check`): each statement run and each expression evaluated counts one, a list
        value one per item, `range(n)` n, a block call or a node 20, and an operation
        on symbolic sizes one per pair of terms it combines.
    max_depth: blocks nested inside one another.
    max_imports: files imported, directly or not.
    max_file_bytes: the size of one spec file (and of a string built from others).
    max_total_bytes: the size of a spec and all the files it imports together.
    max_tensor_elements: elements of one tensor (a weight, a buffer or an activation;
        an activation's size names such as `N` count as 1).
    max_parameters: elements of the parameters and buffers of one network (what its
        module holds), checked before any is allocated.
    import_roots: directories, besides the importing file's own, whose files may be
        imported, and where an import not found beside its importing file is looked
        for, in this order (the first found is read).
    """

    # Each bound stops a runaway at once (a fan-out, a loop of a billion, a megabyte of
    # brackets), but a spec that stays under all of them still costs what it holds:
    # parsing runs at 35-100 KB/s (2 MiB of `[1,1,...]`, the densest text: ~1 minute,
    # ~1.3 GB), a node ~65 µs (the largest network of specs/ has under 200), a step of
    # max_steps ~3 µs. Loops are bounded by the work they do, not only by their
    # iterations, and imports by the bytes they add.
    max_nodes: int = 200_000
    max_iterations: int = 100_000
    max_steps: int = 500_000
    max_depth: int = 64
    max_imports: int = 256
    max_file_bytes: int = 2 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024
    max_tensor_elements: int = 2**31
    max_parameters: int = 10**10
    import_roots: tuple[str, ...] = ()

    def allowed_roots(self, own: Path) -> list[Path]:
        """The directories imports may read below: `own`, then each import root."""
        return [own, *(Path(r).resolve() for r in self.import_roots)]


@dataclass
class Work:
    """Compile-time work done against `max_steps`. One `check` shares one among every
    network and train declaration it expands, so many networks are bounded together."""

    steps: int = 0
    reported: bool = False  # the error is said once


def value_problem(value: Any) -> str | None:
    """What is too big about a compile-time value built by arithmetic, or None.

    Checked after every operation, so a size that squares at each step of a loop is
    stopped at the first step past the bound, long before it fills memory.
    """
    if isinstance(value, SymExpr) and len(str(value)) > MAX_SYMBOLIC_CHARS:
        return f"a symbolic size over {MAX_SYMBOLIC_CHARS} characters long"
    return None


def symbolic_work(op: str, a: Any, b: Any) -> int:
    """Steps (max_steps) that `a op b` costs beyond one when a side is a symbolic size:
    a product or quotient pairs every term of one side with every term of the other,
    a sum or comparison walks both; each pair costs about as much as a statement."""
    if not isinstance(a, SymExpr) and not isinstance(b, SymExpr):
        return 0
    left = a.term_count if isinstance(a, SymExpr) else 1
    right = b.term_count if isinstance(b, SymExpr) else 1
    return left * right if op in ("*", "/", "//", "%", "**") else left + right


def elements(shape: Iterable[Any]) -> int:
    """Elements of a tensor of `shape`; size names (symbolic dims) count as 1."""
    n = 1
    for d in shape:
        if isinstance(d, int):
            n *= d
    return n


def tensor_problem(what: str, shape: Iterable[Any], limits: Limits) -> str | None:
    """An error message when a tensor of `shape` is over `max_tensor_elements`, else None."""
    n = elements(shape)
    if n <= limits.max_tensor_elements:
        return None
    return (
        f"{what} has {n} elements, over the limit of {limits.max_tensor_elements} "
        f"(raise it with --max-tensor-elements)"
    )


def parameters_problem(total: int, limits: Limits) -> str | None:
    """An error message when a network's `total` elements of parameters and buffers
    pass `max_parameters`."""
    if total <= limits.max_parameters:
        return None
    return (
        f"the network has {total} parameters and buffers, over the limit of "
        f"{limits.max_parameters} (raise it with --max-parameters)"
    )
