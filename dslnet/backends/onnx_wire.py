"""Weights into the protobuf wire format, with one copy of their data.

`add_initializer` writes a raw-data TensorProto into a graph; `tensor_wire` and
`wire_tag_len` write the same fields as bytes, so that `emit_onnx_bytes` can splice
each weight into the serialized model without building a TensorProto for it, and
`fields_from` finds where (the bytes are the same as `SerializeToString`'s).
"""

from __future__ import annotations

from collections.abc import Mapping

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


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def fields_from(data: bytes, field: int) -> int:
    """Where the first top-level field numbered `field` or above starts in `data`, a
    serialized message (its length when there is none): protobuf writes a message's
    fields in number order, so a field serialized apart goes in at that offset and the
    bytes are those of the message serialized whole."""
    pos = 0
    while pos < len(data):
        tag, after_tag = _read_varint(data, pos)
        if tag >> 3 >= field:
            return pos
        wire_type = tag & 7
        if wire_type == 0:  # varint
            _, pos = _read_varint(data, after_tag)
        elif wire_type == 1:  # 64-bit
            pos = after_tag + 8
        elif wire_type == 2:  # length-delimited
            length, start = _read_varint(data, after_tag)
            pos = start + length
        elif wire_type == 5:  # 32-bit
            pos = after_tag + 4
        else:  # groups: no ONNX message has them
            raise ValueError(f"unexpected wire type {wire_type} at byte {pos}")
    return len(data)


def _wire_field(buf: bytearray, field: int, payload: bytes | bytearray | memoryview) -> None:
    wire_tag_len(buf, field, len(payload))
    buf += payload


def tensor_wire(name: str, array: Array) -> tuple[bytes, memoryview]:
    """A TensorProto (dims=1, data_type=2, name=8, raw_data=9) in wire format: the
    fields before the data, and the data itself (not copied)."""
    shape = array.shape  # ascontiguousarray would make a 0-d array 1-d
    data = _little_endian(array)
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
    """A raw-data TensorProto written straight into the graph."""
    tensor = body.initializer.add()
    _describe(tensor, name, array)
    tensor.raw_data = _little_endian(array).tobytes()


def add_initializers(body: onnx.GraphProto, arrays: Mapping[str, Array]) -> None:
    """Raw-data TensorProtos for `arrays`, in their order, written straight into the
    graph. Protobuf takes a weight's data only as a bytes object, which it copies, so
    each weight is copied twice; the data goes in largest first so that the second
    copy is the only one into fresh memory: malloc serves each later, smaller
    temporary from the memory the first freed, already mapped, instead of mapping new
    pages (which costs more than the copy itself)."""
    tensors = []
    for name, array in arrays.items():
        tensor = body.initializer.add()
        _describe(tensor, name, array)
        tensors.append((tensor, array))
    for tensor, array in sorted(tensors, key=lambda pair: -pair[1].nbytes):
        tensor.raw_data = _little_endian(array).tobytes()


def _describe(tensor: onnx.TensorProto, name: str, array: Array) -> None:
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.dims.extend(array.shape)


def _little_endian(array: Array) -> Array:
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return data
