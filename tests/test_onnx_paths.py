"""The ways to an ONNX model agree: `prog.onnx(...)` (a ModelProto), `prog.onnx_bytes(...)`
(its bytes, made without it) and `dslnet compile --emit onnx` (a file) give the same
bytes, and the weights in them are the ones given, `prog.torch()`'s state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import dslnet
from dslnet.backends.onnx_wire import fields_from
from dslnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
# Batch norms (buffers, and a step counter no lowering reads), convolutions, a head.
RESNET = (str(ROOT / "specs" / "resnet.net"), "ResNet18", {"classes": 10, "size": 32})
# Blocks, which functions=True makes ONNX local functions (model field 25).
MLP = (str(ROOT / "specs" / "mlp.net"), "ResidualMLP", {"hidden": 32})


@pytest.mark.parametrize("case", [RESNET, MLP], ids=["resnet", "mlp"])
@pytest.mark.parametrize("functions", [False, True], ids=["flat", "functions"])
def test_api_bytes_are_the_models_and_hold_the_torch_weights(
    case: tuple[str, str, dict[str, int]], functions: bool
) -> None:
    spec, network, params = case
    prog = dslnet.load(spec)
    state = prog.torch(network, **params).state_dict()
    model = prog.onnx(network, state, functions=functions, **params)
    data = prog.onnx_bytes(network, state, functions=functions, **params)
    assert data == model.SerializeToString()
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for name, tensor in state.items():
        if name.endswith("num_batches_tracked"):  # read by no lowering: left out
            assert name not in initializers
            continue
        np.testing.assert_array_equal(initializers[name], tensor.numpy(), err_msg=name)


def test_cli_file_is_the_api_bytes(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    spec, network, params = RESNET
    prog = dslnet.load(spec)
    state = prog.torch(network, **params).state_dict()
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    out = tmp_path / "r.onnx"
    sets = [arg for key, value in params.items() for arg in ("--set", f"{key}={value}")]
    code = main(
        ["compile", spec, "-n", network, *sets, "--emit", "onnx",
         "--weights", str(weights), "-o", str(out)]
    )  # fmt: skip
    assert code == 0
    assert out.read_bytes() == prog.onnx_bytes(network, state, **params)
    assert not out.with_name("r.onnx.data").exists()


def test_api_bytes_refuse_a_model_one_protobuf_cannot_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dslnet.backends import onnx_external
    from dslnet.backends.onnx_emit import ModelTooLarge

    monkeypatch.setattr(onnx_external, "PROTOBUF_LIMIT", 10_000)
    spec, network, params = MLP
    with pytest.raises(ModelTooLarge, match="external data"):
        dslnet.load(spec).onnx_bytes(network, **params)


def test_fields_from_finds_each_field_of_every_wire_type() -> None:
    """An AttributeProto has varint (i, type), 32-bit (f) and length-delimited (name,
    s, ints, t) fields: the bytes split before field k are the fields under k
    serialized alone, then the rest."""
    attribute = helper.make_attribute("a", 1.5)
    attribute.i = 300  # a varint of two bytes
    attribute.s = b"text"
    attribute.ints.extend([1, 2, 3])
    attribute.t.CopyFrom(numpy_helper.from_array(np.arange(3, dtype=np.float32)))
    data = attribute.SerializeToString()
    fields = [field.number for field, _ in attribute.ListFields()]
    for number in range(1, max(fields) + 2):
        below = onnx.AttributeProto()
        for field, value in attribute.ListFields():
            if field.number < number:
                below.MergeFrom(_only(attribute, field.name, value))
        assert data[: fields_from(data, number)] == below.SerializeToString(), number
    assert fields_from(data, max(fields) + 1) == len(data)


def _only(message: onnx.AttributeProto, name: str, value: object) -> onnx.AttributeProto:
    one = onnx.AttributeProto()
    one.CopyFrom(message)
    for field, _ in message.ListFields():
        if field.name != name:
            one.ClearField(field.name)
    return one


def test_fields_from_refuses_a_group() -> None:
    with pytest.raises(ValueError, match="wire type 3"):
        fields_from(bytes([1 << 3 | 3]), 2)
