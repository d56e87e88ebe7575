"""Same spec in, same bytes out: across processes with different hash seeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _emit(seed: str, network: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dslnet.cli",
            "compile",
            "specs/mlp.net",
            "-n",
            network,
            "--emit",
            "ir",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_ir_bytes_identical_across_hash_seeds() -> None:
    for network in ("MLP", "ResidualMLP"):
        outputs = {_emit(seed, network) for seed in ("0", "1", "12345")}
        assert len(outputs) == 1, f"{network}: --emit ir differs between hash seeds"
