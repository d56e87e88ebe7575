"""Same spec in, same bytes out: the IR text, the PyTorch source and the ONNX model,
whatever the hash seed, and when compiled in parallel processes or threads (issue 9).

Each run is a fresh process printing SHA-256 digests, so nothing is shared with the
test process: not a cache, not a loaded op module, not the seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# (spec, network, parameters): small sizes where the defaults make big weights.
CASES = [
    ("specs/mlp.net", "ResidualMLP", {}),
    ("specs/resnet.net", "ResNet18", {}),
    ("specs/transformer.net", "GPT", {"d": 64, "heads": 4, "layers": 2, "context": 32}),
    ("specs/unet.net", "UNet", {"base": 8}),
    ("specs/vit.net", "ViT", {"dim": 48, "depth": 2}),
]
THREADS = 4

DIGESTS = """
import hashlib, json, sys
from concurrent.futures import ThreadPoolExecutor
import dslnet
from dslnet.ir.printer import print_graph

CASES = json.loads(sys.argv[2])

def sha(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()

def digests(program=None):
    out = {}
    for spec, network, params in CASES:
        p = program[spec] if program else dslnet.load(spec)
        out[network] = {
            "ir": sha(print_graph(p.ir(network, **params))),
            "torch": sha(p.torch_source(network, **params)),
            "onnx": sha(p.onnx(network, **params).SerializeToString()),
        }
    return out

if sys.argv[1] == "serial":
    print(json.dumps([digests()]))
else:  # from a cold start: the first loads of every module race each other
    threads = int(sys.argv[1])
    with ThreadPoolExecutor(threads) as pool:
        own = [pool.submit(digests) for _ in range(threads)]
        print(json.dumps([f.result() for f in own]))
    shared = {spec: dslnet.load(spec) for spec, _, _ in CASES}
    with ThreadPoolExecutor(threads) as pool:
        together = [pool.submit(digests, shared) for _ in range(threads)]
        print(json.dumps([f.result() for f in together]))
"""


def _start(mode: str, seed: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", DIGESTS, mode, json.dumps(CASES)],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": seed},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _results(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return [run for line in out.splitlines() for run in json.loads(line)]


def test_processes_with_different_hash_seeds_and_threads_agree() -> None:
    """Serial runs under three hash seeds, and a run of several threads from a cold
    start, all started at once (the processes wait on nothing but their own work)."""
    serial = [_start("serial", seed) for seed in ("0", "1", "12345")]
    threaded = _start(str(THREADS), "random")
    first, *others = [_results(p)[0] for p in serial]
    assert set(first) == {network for _, network, _ in CASES}
    for other in others:
        for network, forms in first.items():
            assert other[network] == forms, f"{network} differs between hash seeds"
    runs = _results(threaded)
    assert len(runs) == 2 * THREADS  # each thread its own programs, then shared ones
    for i, run in enumerate(runs):
        for network, forms in first.items():
            assert run[network] == forms, f"thread {i}: {network} differs from a serial run"
