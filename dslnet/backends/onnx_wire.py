"""Weights into the protobuf wire format, with one copy of their data.

`add_initializer` writes a raw-data TensorProto into a graph; `tensor_wire` and
`wire_tag_len` write the same fields as bytes, so that `emit_onnx_bytes` can append
each weight to the serialized model without building a TensorProto for it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from dslnet.ir.weights import Array


def _varint(buf: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            buf.append(byte | 0x80)
        else:
            buf.append(byte)
            return


def wire_tag_len(buf: bytearray, field: int, length: int) -> None:
    _varint(buf, field << 3 | 2)  # wire type 2: length-delimited
    _varint(buf, length)


def _wire_field(buf: bytearray, field: int, payload: bytes | bytearray | memoryview) -> None:
    wire_tag_len(buf, field, len(payload))
    buf += payload


def tensor_wire(name: str, array: Array) -> tuple[bytes, memoryview]:
    """A TensorProto (dims=1, data_type=2, name=8, raw_data=9) in wire format: the
    fields before the data, and the data itself (not copied)."""
    shape = array.shape  # ascontiguousarray would make a 0-d array 1-d
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    buf = bytearray()
    for dim in shape:
        _varint(buf, 1 << 3)
        _varint(buf, dim)
    _varint(buf, 2 << 3)
    _varint(buf, helper.np_dtype_to_tensor_dtype(data.dtype))
    _wire_field(buf, 8, name.encode("utf-8"))
    raw = memoryview(data.data).cast("B")
    wire_tag_len(buf, 9, len(raw))
    return bytes(buf), raw


def add_initializer(body: onnx.GraphProto, name: str, array: Array) -> None:
    """A raw-data TensorProto written straight into the graph (one copy of the data)."""
    tensor = body.initializer.add()
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.dims.extend(array.shape)
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    tensor.raw_data = data.tobytes()
