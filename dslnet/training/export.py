"""What a finished run leaves beside its checkpoint: each layer's weights as
safetensors, and each layer that is a network as an ONNX model (also quantized when
asked), built from the network's own IR with the trained weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import onnx
from safetensors.torch import save as safetensors_bytes

from dslnet.ir.graph import Graph
from dslnet.training.trainer import Trainer

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
    from dslnet.backends.onnx_emit import emit_onnx
    from dslnet.passes.pipeline import Options, optimize

    files: dict[Path, bytes] = {}
    for ref in trainer.plan.layers.values():
        state = {k: v.detach().contiguous() for k, v in trainer.state_dict(ref.name).items()}
        files[out_dir / f"{ref.name}.safetensors"] = safetensors_bytes(state)
        graph = (graphs or {}).get(ref.name, ref.graph)
        if graph is None:
            continue  # a block or an op: weights only
        weights: dict[str, Any] = {k: v.numpy() for k, v in state.items()}
        files[out_dir / f"{ref.name}.onnx"] = emit_onnx(
            graph, weights, opset=opset
        ).SerializeToString()
        if qat_export is not None:
            files[out_dir / f"{ref.name}.int8.onnx"] = qat_export(ref.name).SerializeToString()
        elif quantize is not None:
            options = Options(quantize=quantize)  # type: ignore[arg-type]
            model = optimize(graph, options, weights).onnx(opset=opset)
            files[out_dir / f"{ref.name}.{quantize}.onnx"] = model.SerializeToString()
    return files
