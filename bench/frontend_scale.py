"""Front-end cost against spec size: `dslnet check` on generated specs of N layers,
and on files of N declarations.

Prints, for 2,000 and 20,000 layers, the wall time of a fresh `dslnet check`
process (what a CLI user pays) and of the in-process load + check, and the
ratio between the sizes. The target: 2,000 layers under 2 s, and 10x the
layers at most 12x the time.

Then, for 10,000, 20,000 and 40,000 small blocks (each calling the one before: the
longest chain for the recursion check), the in-process load + check and, of it, the
static checks (dslnet.frontend.resolve: names, duplicates, recursion) run again on
the parsed blocks, with the ratio per doubling. The target: the static checks
linear, at most 2.2x per doubling. Run: `make bench` or
`python bench/frontend_scale.py` (`--declarations` for the second part only).
"""

from __future__ import annotations

import gc
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dslnet
from dslnet.core.diagnostics import Diagnostics
from dslnet.frontend.resolve import check_block, check_recursion

# The large specs measured here are over the default bounds on purpose (compile-time
# steps, file size): raised, so that what is timed is the work, not the refusal.
ROOMY = dslnet.Limits(max_steps=50_000_000, max_file_bytes=2**26, max_total_bytes=2**26)
ROOMY_FLAGS = ["--max-steps", "50000000", "--max-file-bytes", "67108864"]
ROOMY_FLAGS += ["--max-total-bytes", "67108864"]


def generate(layers: int) -> str:
    """A residual MLP spec with `layers` op layers, through blocks and plain pipelines."""
    lines = [
        "block Res(width: int) {",
        "    in x: [N, D]",
        "    out y = x + (x -> linear(width) -> relu -> linear(D))",
        "}",
        "network Big(w: int = 32) {",
        "    in x: float32[N, 64]",
        "    h = x -> linear(w)",
    ]
    count = 1
    while count < layers:
        if count % 8 == 1:
            lines.append("    h = h -> Res(w * 2)  # four layers")
            count += 4
        else:
            lines.append("    h = h -> linear(w) -> relu")
            count += 2
    lines += ["    out y = h", "}"]
    return "\n".join(lines) + "\n"


def time_cli(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dslnet.cli", "check", *ROOMY_FLAGS, str(path)],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_api(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        diags = dslnet.load(path, ROOMY, strict=False).check()
        times.append(time.perf_counter() - start)
        assert not any(d.is_error for d in diags)
    return statistics.median(times)


def layers_report() -> None:
    sizes = (2_000, 20_000)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"big{n}.net"
            path.write_text(generate(n))
            repeats = 5 if n <= 2_000 else 3
            results[n] = (time_cli(path, repeats), time_api(path, repeats))
    print(f"{'layers':>8} {'dslnet check (s)':>18} {'load+check in-process (s)':>27}")
    for n, (cli, api) in results.items():
        print(f"{n:>8} {cli:>18.3f} {api:>27.3f}")
    small, large = sizes
    cli_ratio = results[large][0] / results[small][0]
    api_ratio = results[large][1] / results[small][1]
    print(
        f"ratio {large}/{small}: CLI {cli_ratio:.2f}x, in-process {api_ratio:.2f}x "
        f"(target <= 12x); {small} layers via CLI: {results[small][0]:.2f} s (target < 2 s)"
    )


def declarations(count: int) -> str:
    """`count` small blocks, each calling the one before, and a network using one."""
    lines = ["block B0() {", "    in x: [N, D]", "    out y = x -> relu", "}"]
    for k in range(1, count):
        lines += [f"block B{k}() {{", "    in x: [N, D]", f"    out y = x -> B{k - 1}", "}"]
    lines += ["network Net() {", "    in x: float32[N, 4]", "    out y = x -> B0", "}"]
    return "\n".join(lines) + "\n"


def time_declarations(path: Path) -> tuple[float, float]:
    """(load + check, the static checks alone) in seconds."""
    start = time.perf_counter()
    program = dslnet.load(path, ROOMY, strict=False)
    diags = program.check()
    total = time.perf_counter() - start
    assert not any(d.is_error for d in diags)
    names = set(program.visible_names())
    static = []
    for _ in range(3):  # the fastest of three, each after a collection: less noise
        gc.collect()
        start = time.perf_counter()
        found = Diagnostics()
        for decl in program.decls.values():
            check_block(decl, found, names, program.visible_names, set())
        check_recursion(program.decls, found)
        static.append(time.perf_counter() - start)
        assert not found.has_errors
    return total, min(static)


def declarations_report() -> None:
    sizes = (10_000, 20_000, 40_000)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"decls{n}.net"
            path.write_text(declarations(n))
            results[n] = time_declarations(path)
    print(f"{'declarations':>12} {'load+check (s)':>15} {'static checks (s)':>18}")
    for n, (total, static) in results.items():
        print(f"{n:>12} {total:>15.2f} {static:>18.3f}")
    for small, large in itertools.pairwise(sizes):
        total_ratio = results[large][0] / results[small][0]
        static_ratio = results[large][1] / results[small][1]
        print(
            f"ratio {large}/{small}: load+check {total_ratio:.2f}x, static checks "
            f"{static_ratio:.2f}x (target <= 2.2x)"
        )


def main() -> None:
    if "--declarations" not in sys.argv[1:]:
        layers_report()
    declarations_report()


if __name__ == "__main__":
    main()
