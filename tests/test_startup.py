"""How the `dslnet` command starts (dslnet/__main__.py): the same way for the console
script and `python -m dslnet`, with the cyclic collector paused only for the imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_script_starts_as_python_dash_m_does() -> None:
    project = (ROOT / "pyproject.toml").read_text("utf-8")  # no tomllib before 3.11
    scripts = project.split("[project.scripts]\n", 1)[1].split("\n\n", 1)[0]
    assert scripts.splitlines() == ['dslnet = "dslnet.__main__:run"']


def test_a_command_runs_with_the_collector_on_and_the_start_up_objects_frozen() -> None:
    code = (
        "import gc, sys\n"
        "from dslnet.__main__ import run\n"
        "sys.argv = ['dslnet', 'check', 'specs/mlp.net']\n"
        "code = run()\n"
        "print(code, gc.isenabled(), gc.get_freeze_count() > 10_000)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert run.stdout.splitlines()[-1] == "0 True True", run.stdout + run.stderr


def test_calling_main_leaves_the_collector_alone() -> None:
    """Programs and tests call dslnet.cli.main in their own processes: nothing frozen."""
    code = (
        "import gc\n"
        "from dslnet.cli import main\n"
        "code = main(['check', 'specs/mlp.net'])\n"
        "print(code, gc.isenabled(), gc.get_freeze_count())\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert run.stdout.splitlines()[-1] == "0 True 0", run.stdout + run.stderr
