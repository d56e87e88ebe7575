"""The examples run as a user runs them, each asserting its own result (loss falls,
ORT agrees, frozen weights stay); here they only have to exit 0 in time. The scripts
and their launchers are listed in tests/conftest.py, which runs them in the background
while the rest of the suite runs; these tests come last and read what they printed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import ExampleRun

ROOT = Path(__file__).resolve().parents[1]


def test_example_runs(
    example_script: str,
    examples: dict[str, tuple[list[str], str]],
    example_runs: dict[str, ExampleRun],
) -> None:
    done = example_runs[example_script].result()
    assert done.returncode == 0, done.stdout + done.stderr
    assert examples[example_script][1] in done.stdout


def test_every_example_is_run(examples: dict[str, tuple[list[str], str]]) -> None:
    scripts = {p.stem for p in (ROOT / "examples").glob("*.py")}
    assert scripts - {"synthetic", "demo"} == set(examples)
