"""`dslnet check` as a whole process, side by side with an earlier revision.

Alternates runs of `python -m dslnet check SPEC` from a temporary worktree of
`--baseline` (default cbec9a5, before the lazy start-up) and from this tree, and
prints the median wall and CPU time of each and their ratio. Both sides keep their
bytecode in one private cache, as an installed package does, and a side that does
not exit 0 stops the bench (a crash would look fast).

Run: `python bench/startup.py [--baseline REV] [--runs N] [SPEC]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} in {cwd} failed:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "mlp.net"))
    parser.add_argument("--baseline", default="cbec9a5")
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    spec = str(Path(args.spec).resolve())

    with tempfile.TemporaryDirectory(prefix="dslnet-startup-") as temp:
        old = Path(temp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(old), args.baseline],
            cwd=ROOT,
            check=True,
        )
        try:
            # An editable install maps `dslnet.grammar` to this tree's grammar; the
            # baseline must parse with its own.
            (old / "dslnet" / "grammar").symlink_to(old / "grammar")
            env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(temp) / "pycache")}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            sides = {
                "baseline": (old, {**env, "PYTHONPATH": str(old)}),
                "now": (ROOT, env),
            }
            command = [sys.executable, "-m", "dslnet", "check", spec]
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
            for _ in range(2):  # warm the bytecode cache and the file cache
                for cwd, side_env in sides.values():
                    timed(command, cwd, side_env)
            for _ in range(args.runs):
                for name, (cwd, side_env) in sides.items():
                    times[name].append(timed(command, cwd, side_env))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)

    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in times.items()
    }
    print(f"dslnet check {Path(spec).name}, {args.runs} runs each, medians")
    for name, (wall, cpu) in medians.items():
        label = f"{name} ({args.baseline})" if name == "baseline" else name
        print(f"  {label:<20} wall {wall:.3f} s   CPU {cpu:.3f} s")
    (old_wall, old_cpu), (new_wall, new_cpu) = medians["baseline"], medians["now"]
    print(f"  speed-up             wall {old_wall / new_wall:.2f}x   CPU {old_cpu / new_cpu:.2f}x")


if __name__ == "__main__":
    main()
