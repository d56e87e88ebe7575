"""The main job end to end: spec -> PyTorch source + ONNX file, both run, both agree.

Run: make demo (or .venv/bin/python examples/demo.py [SPEC NETWORK]).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from safetensors.torch import save_file

from dslnet.backends.onnx_emit import run_onnx
from dslnet.cli import main as dslnet

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> None:
    print("$ dslnet " + " ".join(argv))
    code = dslnet(list(argv))
    if code != 0:
        sys.exit(code)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> None:
    spec, network = sys.argv[1:3] if len(sys.argv) > 2 else ("specs/mlp.net", "ResidualMLP")
    out = ROOT / "build" / "demo"
    source, weights, model = (
        out / f"{network}.py",
        out / f"{network}.safetensors",
        out / f"{network}.onnx",
    )

    run("check", spec)
    run("compile", spec, "-n", network, "--emit", "torch", "-o", rel(source))

    # Train-side: the generated source is an ordinary module.
    loaded = importlib.util.spec_from_file_location("generated", source)
    assert loaded is not None and loaded.loader is not None
    generated = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(generated)
    torch.manual_seed(0)
    module = getattr(generated, network)().eval()
    save_file(module.state_dict(), str(weights))
    print(
        f"  {source.relative_to(ROOT)}: {sum(p.numel() for p in module.parameters()):,} "
        f"parameters; weights saved to {weights.relative_to(ROOT)}"
    )

    # Serve-side: the ONNX model, emitted directly, with those weights.
    run(
        "compile",
        spec,
        "-n",
        network,
        "--emit",
        "onnx",
        "--weights",
        str(weights),
        "-o",
        str(model),
    )
    x = np.random.default_rng(0).standard_normal((4, 784)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = run_onnx(onnx.load(model), {"x": x})
    (actual,) = got.values()
    diff = float(np.abs(actual - expected).max())
    verdict = "agree" if diff <= 1e-4 else "DISAGREE"
    print(f"  PyTorch and ONNX Runtime {verdict} on a random batch of 4: max |diff| = {diff:.2e}")
    if diff > 1e-4:
        sys.exit(1)


if __name__ == "__main__":
    main()
