"""What `import dslnet` and `dslnet check` load: the front end only.

`dslnet check` imports neither numpy, onnx, torch nor onnxruntime (nor the command
modules of other commands); `import dslnet` imports nothing but the package until a
name is used.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dslnet
from dslnet.core.types import DType
from dslnet.ops.elementwise import FLOAT_MAX, INT_RANGE

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "onnx", "onnxruntime", "torch")


def _imported(*args: str) -> set[str]:
    """The top-level packages a fresh `python -X importtime ARGS` imports."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stdout + run.stderr
    names = set()
    for line in run.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "dslnet" in names or args[0] == "-c", run.stderr[-2000:]
    return names


@pytest.mark.parametrize("spec", ["specs/mlp.net", "specs/gan.net", "specs/mnist.net"])
def test_check_loads_neither_numpy_onnx_nor_torch(spec: str) -> None:
    heavy = _imported("-m", "dslnet", "check", spec) & set(HEAVY)
    assert not heavy, f"`dslnet check {spec}` imported {sorted(heavy)}"


def test_import_dslnet_loads_only_the_package() -> None:
    loaded = _imported("-c", "import dslnet; import sys; assert 'dslnet.api' not in sys.modules")
    assert not loaded & {*HEAVY, "lark", "pydantic"}, sorted(loaded & {*HEAVY, "lark", "pydantic"})


def test_the_public_names_resolve_to_their_homes() -> None:
    from dslnet.api import Program, load, loads
    from dslnet.core.diagnostics import CompileError
    from dslnet.frontend.limits import Limits

    assert (dslnet.Program, dslnet.load, dslnet.loads) == (Program, load, loads)
    assert (dslnet.CompileError, dslnet.Limits) == (CompileError, Limits)
    for name in dslnet.__all__:
        assert getattr(dslnet, name) is not None
    assert set(dslnet.__all__) <= set(dir(dslnet))
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = dslnet.Nothing


def test_dtype_ranges_written_out_are_numpys() -> None:
    """The ranges constants are checked against (without importing numpy) are numpy's."""
    for dtype, largest in FLOAT_MAX.items():
        if dtype is not DType.bfloat16:  # numpy has none; 3.39e38 is the agreed bound
            assert largest == float(np.finfo(dtype.value).max), dtype
    for dtype, (least, most) in INT_RANGE.items():
        info = np.iinfo(dtype.value)
        assert (least, most) == (int(info.min), int(info.max)), dtype
    numeric = {d for d in DType if d is not DType.bool}
    assert set(FLOAT_MAX) | set(INT_RANGE) == numeric
