"""Quantization of ONNX models emitted by dslnet: float16, dynamic and static int8.

An ONNX -> ONNX stage beside the ONNX emitter. Its entry point, `quantize_onnx`
(`quantize_with_report` adds the report), takes the emitted model, the IR graph it
lowers and a `QuantizeRequest`. Underneath, each pass maps a float32
`onnx.ModelProto` to a new one and leaves its argument alone:

* `to_fp16`: the graph in float16, numerically fragile ops kept in float32;
* `quantize_dynamic_int8`: MatMul/Gemm weights in int8, activations quantized per call
  (ONNX Runtime's DynamicQuantizeMatMul);
* `quantize_static_int8`: QuantizeLinear/DequantizeLinear pairs calibrated on data
  (`load_calibration` reads or generates it), for ORT's QDQ fusions;
  `quantize_static_int8_with_params` places them the same way with given ranges (QAT's);
* `measure`: output drift and ORT CPU latency against the float32 model.

`skip` takes IR node names (or a block instance, which covers the nodes inside it) to
leave in float32; the IR node of an ONNX node is the emitter's provenance metadata
(`dslnet.backends.onnx_provenance`), not its name. `marked_skip(graph)` gives the nodes
a spec marks `@quantize(skip)`.
"""

from dslnet.backends.quantize._onnx import QuantizeError, marked_skip
from dslnet.backends.quantize.calibrate import CalibrationError, load_calibration
from dslnet.backends.quantize.dynamic import quantize_dynamic_int8
from dslnet.backends.quantize.fp16 import to_fp16
from dslnet.backends.quantize.ranges import Method
from dslnet.backends.quantize.report import OutputDrift, QuantReport, measure
from dslnet.backends.quantize.stage import (
    QuantizeRequest,
    calibration_feeds,
    quantize_onnx,
    quantize_with_report,
)
from dslnet.backends.quantize.static import quantize_static_int8, quantize_static_int8_with_params

__all__ = [
    "CalibrationError",
    "Method",
    "OutputDrift",
    "QuantReport",
    "QuantizeError",
    "QuantizeRequest",
    "calibration_feeds",
    "load_calibration",
    "marked_skip",
    "measure",
    "quantize_dynamic_int8",
    "quantize_onnx",
    "quantize_static_int8",
    "quantize_static_int8_with_params",
    "quantize_with_report",
    "to_fp16",
]
