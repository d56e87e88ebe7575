"""What a finished run leaves beside its checkpoint: each layer's weights as
safetensors, and each layer that is a network as an ONNX model (also quantized when
asked), built from the network's own IR with the trained weights."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from safetensors.torch import save as safetensors_bytes

from dslnet.ir.graph import Graph
from dslnet.training.trainer import Trainer

CALIBRATION_SAMPLES = 256  # training samples that set int8-static activation ranges
# Builds the int8 model of a network trained with fake quantization (dslnet.training.qat).
QatExport = Callable[[str], onnx.ModelProto]


def exported_files(
    trainer: Trainer,
    out_dir: Path,
    *,
    quantize: str | None = None,
    opset: int = 18,
    graphs: Mapping[str, Graph] | None = None,
    qat_export: QatExport | None = None,
) -> dict[Path, bytes]:
    """File path -> bytes for every trained layer (written together by the caller)."""
    from dslnet.api import optimize
    from dslnet.backends.onnx_emit import emit_onnx
    from dslnet.passes.pipeline import Options

    files: dict[Path, bytes] = {}
    for ref in trainer.plan.layers.values():
        state = {k: v.detach().cpu().contiguous() for k, v in trainer.state_dict(ref.name).items()}
        files[out_dir / f"{ref.name}.safetensors"] = safetensors_bytes(state)
        graph = (graphs or {}).get(ref.name, ref.graph)
        if graph is None:
            continue  # a block or an op: weights only
        weights: dict[str, Any] = {k: v.numpy() for k, v in state.items()}
        files |= onnx_files(out_dir / f"{ref.name}.onnx", emit_onnx(graph, weights, opset=opset))
        if qat_export is not None:
            files |= onnx_files(out_dir / f"{ref.name}.int8.onnx", qat_export(ref.name))
        elif quantize is not None:
            with tempfile.TemporaryDirectory() as scratch:
                calibrate = None
                if quantize == "int8-static":
                    calibrate = calibration_file(trainer, ref.name, Path(scratch))
                options = Options(quantize=quantize, calibrate=calibrate)  # type: ignore[arg-type]
                model = optimize(graph, options, weights).onnx(opset=opset)
            files |= onnx_files(out_dir / f"{ref.name}.{quantize}.onnx", model)
    return files


def onnx_files(path: Path, model: onnx.ModelProto) -> dict[Path, bytes]:
    """`model` at `path`, with its weights in `path.data` beside it when one protobuf
    cannot hold them (2 GiB)."""
    from dslnet.backends.onnx_external import data_file_name, file_map, model_files

    return file_map(path, model_files(model, data_file_name(path)))


def calibration_file(trainer: Trainer, layer: str, scratch: Path) -> Path | None:
    """A .npz of training samples named like `layer`'s own inputs, for int8-static
    calibration; None (generated inputs) when the layer is not fed straight from the
    data in a step."""
    module = trainer.plan.layers[layer].module
    for step in trainer.plan.steps:
        for call in step.graph.calls.values():
            if call.instance != module:
                continue
            fed = dict(zip(call.input_names, call.inputs))
            if not all(value in trainer.plan.data_inputs for value in fed.values()):
                continue
            batch = next(iter(trainer.source.batches(CALIBRATION_SAMPLES, 0, 0)))
            path = scratch / "calibration.npz"
            arrays: dict[str, Any] = {own: batch[value].numpy() for own, value in fed.items()}
            np.savez(path, **arrays)
            return path
    return None
