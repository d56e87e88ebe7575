"""gelu's two forms (exact erf and GPT-2's tanh) in torch and in ONNX at every opset
form: a Gelu node from opset 20, the formula in primitive ops below it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dslnet

SPEC = """
network G(form: str = "none") {
    in x: float32[N, 6]
    out y = gelu(x, approximate=form)
}
"""


@pytest.mark.parametrize("form", ["none", "tanh"])
@pytest.mark.parametrize("opset", [17, 18, 20, 21])
def test_gelu_torch_and_onnx_agree_with_the_reference(form: str, opset: int) -> None:
    import onnxruntime as ort

    prog = dslnet.loads(SPEC)
    module = prog.torch("G", form=form).eval()
    x = torch.linspace(-6.0, 6.0, 5 * 6).reshape(5, 6)
    expected = torch.nn.GELU(approximate=form)(x)
    assert torch.equal(module(x), expected)

    model = prog.onnx("G", opset=opset, form=form)
    op_types = {node.op_type for node in model.graph.node}
    assert ("Gelu" in op_types) == (opset >= 20)
    if opset >= 20:
        (gelu,) = [n for n in model.graph.node if n.op_type == "Gelu"]
        assert gelu.attribute[0].s.decode() == form
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-6, rtol=1e-6)


def test_gelu_refuses_an_unknown_form_listing_the_choices() -> None:
    prog = dslnet.loads(SPEC, "g.net")
    with pytest.raises(dslnet.CompileError) as err:
        prog.ir("G", form="tahn")
    text = str(err.value)
    assert "'none', 'tanh'" in text and "tahn" in text
