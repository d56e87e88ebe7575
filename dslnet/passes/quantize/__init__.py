"""Quantization of ONNX models emitted by dslnet: float16, dynamic and static int8.

Each pass maps a float32 `onnx.ModelProto` to a new one and leaves its argument alone:

* `to_fp16`: the graph in float16, numerically fragile ops kept in float32;
* `quantize_dynamic_int8`: MatMul/Gemm weights in int8, activations quantized per call
  (ONNX Runtime's DynamicQuantizeMatMul);
* `quantize_static_int8`: QuantizeLinear/DequantizeLinear pairs calibrated on data
  (`load_calibration` reads or generates it), for ORT's QDQ fusions;
  `quantize_static_int8_with_params` places them the same way with given ranges (QAT's);
* `measure`: output drift and ORT CPU latency against the float32 model.

`skip` takes IR node names (the part of an ONNX node name before its last '/', or a
block instance, which covers the nodes inside it) to leave in float32;
`marked_skip(graph)` gives the nodes a spec marks `@quantize(skip)`.
"""

from dslnet.passes.quantize._onnx import QuantizeError, marked_skip
from dslnet.passes.quantize.calibrate import CalibrationError, load_calibration
from dslnet.passes.quantize.dynamic import quantize_dynamic_int8
from dslnet.passes.quantize.fp16 import to_fp16
from dslnet.passes.quantize.ranges import Method
from dslnet.passes.quantize.report import OutputDrift, QuantReport, measure
from dslnet.passes.quantize.static import quantize_static_int8, quantize_static_int8_with_params

__all__ = [
    "CalibrationError",
    "Method",
    "OutputDrift",
    "QuantReport",
    "QuantizeError",
    "load_calibration",
    "marked_skip",
    "measure",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "quantize_static_int8_with_params",
    "to_fp16",
]
