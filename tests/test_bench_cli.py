"""`dslnet bench` and `dslnet.benchmark`: a row for every form and batch, outputs that
agree with torch, JSON for tools, and clear errors. Timings are never asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dslnet
from dslnet.benchmark import BenchError, batch_dim, benchmark, make_inputs, unbound_dims
from dslnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "specs" / "mlp.net")
FAST = ["--number", "1", "--rounds", "1", "--warmup", "0"]
SMALL_MLP = [MLP, "-n", "MLP", "--set", "hidden=32"]

# Token ids into a 50-row table, a padding mask, and a symbolic sequence length T.
TOKENS = """
network Tagger(vocab: int = 50) {
    in tokens: int64[N, T]
    in padding: bool[N, T]
    h = tokens -> embedding(vocab, 16)
    h = multihead_attention(h, h, padding, heads=2)
    out tags = h -> linear(5)
}
"""


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain-text table: no forced colour from the environment."""
    for name in ("FORCE_COLOR", "CLICOLOR_FORCE"):
        monkeypatch.delenv(name, raising=False)


def _json_rows(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["bench", *argv, *FAST, "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_a_row_for_every_form_and_batch(capsys: pytest.CaptureFixture[str]) -> None:
    quantize = ["fp16", "int8-dynamic", "int8-static"]
    rows = _json_rows([*SMALL_MLP, "--batch", "1", "3", "--quantize", *quantize], capsys)
    forms = [("torch", "fp32"), ("onnxruntime", "fp32")]
    forms += [("onnxruntime", q) for q in quantize]
    assert [(r["batch"], r["runtime"], r["precision"]) for r in rows] == [
        (batch, *form) for batch in (1, 3) for form in forms
    ]
    for row in rows:
        assert set(row) == {
            "batch", "runtime", "precision", "device", "median_ms", "min_ms", "max_ms",
            "samples_per_s", "speedup", "max_abs_diff", "calls", "threads",
        }  # fmt: skip
        assert row["device"] == "cpu" and row["calls"] == 1 and row["threads"] >= 1
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["samples_per_s"] == pytest.approx(row["batch"] / row["median_ms"] * 1e3)
        if row["precision"] == "fp32":
            assert row["max_abs_diff"] <= 1e-4
        else:  # really the quantized model: close to torch, but not equal
            assert 0 < row["max_abs_diff"] < 0.5
    reference = [r for r in rows if r["runtime"] == "onnxruntime" and r["precision"] == "fp32"]
    assert [r["speedup"] for r in reference] == [1.0, 1.0]
    torch_row = rows[0]
    assert torch_row["max_abs_diff"] == 0.0  # the reference itself
    assert torch_row["speedup"] == pytest.approx(reference[0]["median_ms"] / torch_row["median_ms"])


def test_table_is_aligned_text_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", *SMALL_MLP, "--batch", "2", "--quantize", "int8-dynamic", *FAST]
    assert main([*argv, "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("MLP on cpu, 1 thread: per-call latency")
    assert "speed-up vs ORT fp32" in lines[0]
    assert lines[1].split() == [
        "batch", "form", "latency", "ms", "min-max", "ms", "samples/s", "speed-up", "max", "|diff|",
    ]  # fmt: skip
    body = lines[2:-1]
    assert [line.split()[:3] for line in body] == [
        ["2", "torch", "fp32"],
        ["2", "ORT", "fp32"],
        ["2", "ORT", "int8-dynamic"],
    ]
    assert body[1].split()[-2] == "1.00x"
    assert len({len(line) for line in lines[1:-1]}) == 1  # columns right-aligned
    assert lines[-1].startswith("max |diff|: largest absolute difference")
    assert "\x1b[" not in "".join(lines)


def test_integer_and_bool_inputs_with_a_bound_dim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "tagger.net"
    spec.write_text(TOKENS)
    rows = _json_rows([str(spec), "--batch", "2", "--dim", "T=7", "--quantize", "fp16"], capsys)
    assert [(r["runtime"], r["precision"]) for r in rows] == [
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "fp16"),
    ]
    assert rows[1]["max_abs_diff"] <= 1e-4
    assert math.isfinite(rows[2]["max_abs_diff"])


def test_token_ids_cover_the_embedding_table() -> None:
    graph = dslnet.loads(TOKENS, filename="tagger.net").ir("Tagger")
    feeds = make_inputs(graph, {"N": 64, "T": 16})
    ids, padding = feeds["tokens"], feeds["padding"]
    assert ids.dtype == np.int64 and ids.shape == (64, 16)
    assert ids.min() >= 0 and ids.max() < 50 and ids.max() > 40  # the whole table, not 0..1
    assert padding.dtype == np.bool_ and padding.any() and not padding[..., 0].any()


def test_batch_and_unbound_dims() -> None:
    unet = dslnet.load(ROOT / "specs" / "unet.net").ir("UNet", base=4)
    assert batch_dim(unet) == "N"
    assert unbound_dims(unet, {}) == ["H", "W"]
    assert unbound_dims(unet, {"H": 1, "W": 2}) == []
    fixed = dslnet.loads("network F() {\n  in x: float32[4, 3]\n  out y = x -> linear(2)\n}\n")
    assert batch_dim(fixed.ir("F")) == 4


def test_api_rows_with_given_weights() -> None:
    prog = dslnet.load(MLP)
    graph = prog.ir("MLP", hidden=16)
    weights = prog.torch("MLP", hidden=16).state_dict()
    rows = benchmark(graph, batches=[2, 5], weights=weights, number=2, rounds=3, warmup=1)
    assert [(r.batch, r.label) for r in rows] == [
        (2, "torch fp32"),
        (2, "ORT fp32"),
        (5, "torch fp32"),
        (5, "ORT fp32"),
    ]
    assert all(r.calls == 2 and r.max_abs_diff <= 1e-4 for r in rows)
    assert torch.get_num_threads() == rows[0].threads  # restored after the run


def test_api_rejects_what_it_cannot_measure() -> None:
    graph = dslnet.load(MLP).ir("MLP", hidden=16)
    with pytest.raises(BenchError, match="rounds must be at least 1, got 0"):
        benchmark(graph, rounds=0)
    with pytest.raises(BenchError, match="unknown quantization int4"):
        benchmark(graph, quantize=["int4"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [MLP, "-n", "MLq"],
            "no network 'MLq' (did you mean 'MLP'?); this spec has: MLP, ResidualMLP",
        ),
        ([MLP], "choose a network with -n (this spec has: MLP, ResidualMLP)"),
        (
            [str(ROOT / "specs" / "unet.net"), "--set", "base=4"],
            "network 'UNet' has symbolic input dims H, W (x: float32[N, 3, "
            "16*H, 16*W]): give their sizes, e.g. --dim H=VALUE --dim W=VALUE",
        ),
        ([*SMALL_MLP, "--dim", "T=3"], "the inputs have no dim T (symbolic dims: none"),
        ([*SMALL_MLP, "--dim", "N=3"], "N is the batch dim: give it as a batch size"),
        ([*SMALL_MLP, "--dim", "T"], "--dim expects NAME=SIZE with a size of 1 or more"),
        ([*SMALL_MLP, "--weights", "no/such.pt"], "no such weights file: no/such.pt"),
        (["no/such/file.net"], "no such file or directory: no/such/file.net"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *argv, *FAST]) == 2
    assert message in capsys.readouterr().err


def test_fixed_batch_cannot_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "fixed.net"
    spec.write_text("network F() {\n  in x: float32[4, 3]\n  out y = x -> linear(2)\n}\n")
    assert main(["bench", str(spec), "--batch", "8", *FAST]) == 2
    assert "fixes its batch at 4" in capsys.readouterr().err
    rows = _json_rows([str(spec)], capsys)
    assert {r["batch"] for r in rows} == {4}


def test_weights_that_do_not_fit_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.pt"
    torch.save(dslnet.load(MLP).torch("MLP", hidden=8).state_dict(), other)
    assert main(["bench", *SMALL_MLP, "--weights", str(other), *FAST]) == 2
    assert "weights do not fit network 'MLP'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [*SMALL_MLP, "--quantize", "int4"],
        [*SMALL_MLP, "--batch", "0"],
        [*SMALL_MLP, "--number", "x"],
        [*SMALL_MLP, "--device", "tpu"],
    ],
)
def test_bad_flag_values_are_argparse_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *argv])
    assert exit_info.value.code == 2
    assert "dslnet bench: error: argument" in capsys.readouterr().err


def test_spec_errors_exit_1_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text("network A() {\n  in x: float32[N, 4]\n  out y = x -> relux\n}\n")
    assert main(["bench", str(bad), *FAST]) == 1
    assert f"{bad}:3:16: error: unknown op or block 'relux'" in capsys.readouterr().err


def test_a_runtime_without_the_device_is_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ORT with the CUDA provider asked for falls back to its CPU provider, so this runs
    anywhere; torch is reported missing and left out."""
    import dslnet.benchmark as bench
    import dslnet.cli.bench as command

    def torch_lacks_cuda(device: str) -> dict[str, str]:
        return {"torch": "no CUDA in this test"} if device == "cuda" else {}

    monkeypatch.setattr(bench, "unavailable", torch_lacks_cuda)
    monkeypatch.setattr(command, "unavailable", torch_lacks_cuda)
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        code = main(["bench", *SMALL_MLP, "--device", "cuda", *FAST, "--json"])
    assert code == 0
    captured = capsys.readouterr()
    assert "dslnet: skipping torch on cuda: no CUDA in this test" in captured.err
    rows = json.loads(captured.out)
    assert [(r["runtime"], r["device"]) for r in rows] == [("onnxruntime", "cuda")]
    assert rows[0]["max_abs_diff"] <= 1e-4  # still against torch on CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_any_runtime_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("ONNX Runtime has CUDA here")
    assert main(["bench", *SMALL_MLP, "--device", "cuda", *FAST]) == 2
    err = capsys.readouterr().err
    assert "nothing can run on cuda here: torch" in err and "no CUDA provider" in err
    assert "skipping" not in err


# --- a loaded machine ----------------------------------------------------------------------


def test_load_warnings_say_when_timings_cannot_be_trusted() -> None:
    from dslnet.cli.machine import Machine, load_warnings

    assert load_warnings(Machine(load=0.2, cores=8), threads=4) == []
    busy, threads = load_warnings(Machine(load=7.5, cores=8), threads=4)
    assert busy.startswith("the machine is busy (load average 7.50 over the last minute, 8 cores)")
    assert threads.startswith("torch will run 4 threads but only 0 of 8 cores are free")
    assert threads.endswith("give --threads 1")
    (threads,) = load_warnings(Machine(load=3.0, cores=8), threads=8)  # not busy, too many
    assert "only 5 of 8 cores are free" in threads and threads.endswith("--threads 5")


def _machine(monkeypatch: pytest.MonkeyPatch, load: float, cores: int) -> None:
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)


def test_bench_warns_on_a_loaded_machine_through_its_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _machine(monkeypatch, load=6.0, cores=4)
    assert main(["bench", *SMALL_MLP, *FAST, "--threads", "2", "--json"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("dslnet bench:")]
    assert warnings == [
        "dslnet bench: warning: the machine is busy (load average 6.00 over the last minute, "
        "4 cores): timings will be slower and vary more than on an idle machine",
        "dslnet bench: warning: torch will run 2 threads but only 0 of 4 cores are free: "
        "torch's thread pool can slow down by orders of magnitude when its threads wait for "
        "cores (ONNX Runtime much less); measure on an idle machine or give --threads 1",
    ]
    assert len(json.loads(captured.out)) == 2  # the rows are still measured
    _machine(monkeypatch, load=0.0, cores=4)
    assert main(["bench", *SMALL_MLP, *FAST, "--threads", "2", "--json"]) == 0
    assert "warning" not in capsys.readouterr().err
