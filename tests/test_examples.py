"""The examples run as a user runs them, each asserting its own result (loss falls,
ORT agrees, frozen weights stay); here they only have to exit 0 in time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]

CASES = {
    "train_mnist": ([sys.executable], "epoch 3: loss"),
    "transfer_learning": ([sys.executable], "task 2, epoch 3"),
    "serve_onnx": ([sys.executable], "agree on 100.0%"),
    "ddp": (TORCHRUN, "over 2 processes"),
    "siamese": ([sys.executable], "epoch 4: contrastive loss"),
    "embed": ([sys.executable], "networks:"),
    "dcgan": ([sys.executable], "steps in"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name: str) -> None:
    launcher, expected = CASES[name]
    done = subprocess.run(
        [*launcher, str(ROOT / "examples" / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert expected in done.stdout


def test_every_example_is_run() -> None:
    scripts = {p.stem for p in (ROOT / "examples").glob("*.py")}
    assert scripts - {"synthetic", "demo"} == set(CASES)
