"""Annotations in specs reach the same passes and backends as the CLI flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dslnet
from dslnet.cli import main
from dslnet.ir.printer import print_graph

SPEC = """
@prune(0.5)
block Body(width: int) {
    in x: [N, F]
    h = x -> linear(width) -> relu
    @prune(0)
    y = h -> linear(width) -> relu
    out y = y
}

block Head(classes: int) {
    in x: [N, F]
    @freeze @quantize(skip)
    layer fc = linear(classes)
    out y = fc(x)
}

network Net() {
    in x: float32[N, 16]
    h = x -> linear(32) -> relu -> Body(32)
    out y = h -> Head(10)
}
"""


def _program() -> dslnet.Program:
    return dslnet.loads(SPEC, filename="annotated.net")


def test_annotations_mark_every_node_they_cover_inner_ones_win() -> None:
    marks = {n.name: n.marks for n in _program().ir("Net").nodes}
    assert marks["linear1"] == {}
    assert marks["body1.linear1"] == marks["body1.relu1"] == {"prune": 0.5}
    assert marks["body1.linear2"] == {"prune": 0.0}
    assert marks["head1.fc"] == {"freeze": True, "quantize": "skip"}
    assert "[@freeze @quantize(skip)]" in print_graph(_program().ir("Net"))


def test_prune_annotation_reaches_the_pruning_pass_like_a_ratio_flag() -> None:
    prog = _program()
    annotated = prog.optimize("Net")
    flagged = prog.optimize("Net", prune_ratios={"body1.linear1": 0.5})
    widths = {n.module: n.attrs.get("features") for n in annotated.graph.nodes}
    assert widths["linear1"] == 32  # outside the block: not asked
    assert widths["body1.linear1"] == 16
    assert widths["body1.linear2"] == 32  # @prune(0) inside wins
    assert annotated.graph.num_parameters < prog.ir("Net").num_parameters
    assert annotated.weights.keys() == flagged.weights.keys()
    for name, value in annotated.weights.items():
        np.testing.assert_array_equal(value, flagged.weights[name])


def test_cli_applies_the_prune_annotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "annotated.net"
    spec.write_text(SPEC)
    assert main(["compile", str(spec), "--emit", "ir-opt"]) == 0
    printed = capsys.readouterr().out
    assert "body1.linear1: float32[N, 16]" in printed


def test_freeze_turns_off_gradients_of_the_frozen_layer_only() -> None:
    prog = _program()
    assert "self.fc.requires_grad_(False)  # @freeze" in prog.torch_source("Net")
    module = prog.torch("Net")
    frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
    assert frozen == {"head1.fc.weight", "head1.fc.bias"}


@pytest.mark.parametrize("mode", ["int8-dynamic", "int8-static", "fp16"])
def test_quantize_skip_keeps_the_marked_layer_in_float32(mode: str) -> None:
    model = _program().optimize("Net", quantize=mode, calibration_samples=2).onnx()
    float32 = 1  # onnx.TensorProto.FLOAT

    def quantized(layer: str) -> bool:
        """Whether the layer's weights left float32 or it feeds quantize ops."""
        mine = [t for t in model.graph.initializer if t.name.startswith(layer)]
        ops = [n.op_type for n in model.graph.node if n.name.startswith(layer + "/")]
        return any(t.data_type != float32 for t in mine) or any("Quant" in o for o in ops)

    assert not quantized("head1.fc")
    assert quantized("body1.linear1")
