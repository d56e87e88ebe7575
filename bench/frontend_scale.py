"""Front-end cost against spec size: `dslnet check` on generated specs of N layers.

Prints, for 2,000 and 20,000 layers, the wall time of a fresh `dslnet check`
process (what a CLI user pays) and of the in-process load + check, and the
ratio between the sizes. The target: 2,000 layers under 2 s, and 10x the
layers at most 12x the time. Run: `make bench` or `python bench/frontend_scale.py`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dslnet


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
            [sys.executable, "-m", "dslnet.cli", "check", str(path)],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_api(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        diags = dslnet.load(path, strict=False).check()
        times.append(time.perf_counter() - start)
        assert not any(d.is_error for d in diags)
    return statistics.median(times)


def main() -> None:
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


if __name__ == "__main__":
    main()
