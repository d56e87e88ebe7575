"""The training ops (zeros_like, ones_like, full_like, detach, accuracy) against numpy
references, through the generated torch module and ONNX Runtime; their errors; and a
GAN step and a classifier's metrics written with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.testing import check_op

TRAINING_OPS = ["zeros_like", "ones_like", "full_like", "detach", "accuracy"]


def spec(body: str, name: str = "S") -> str:
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    return f"network {name}() {{\n{indented}\n}}\n"


def compute(body: str, *feeds: np.ndarray) -> list[np.ndarray]:
    """The spec body's outputs from the generated torch module (eval mode); ONNX Runtime
    must give the same values and dtypes on the same feeds."""
    prog = dslnet.loads(spec(body))
    module = prog.torch("S").eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(f) for f in feeds))
    got = [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]
    graph = prog.ir("S")
    model = emit_onnx(graph, module.state_dict())
    ort = run_onnx(model, dict(zip(graph.inputs, feeds, strict=True)))
    for ours, (name, _) in zip(got, graph.outputs, strict=True):
        assert ort[name].dtype == ours.dtype
        np.testing.assert_allclose(ort[name], ours, rtol=1e-6, atol=1e-7)
    return got


def compile_error(body: str) -> dslnet.CompileError:
    with pytest.raises(dslnet.CompileError) as info:
        dslnet.loads(spec(body), filename="t.net").ir("S")
    return info.value


@pytest.mark.parametrize("name", TRAINING_OPS)
def test_check_op_passes(name: str) -> None:
    check_op(name)


# --- constant tensors --------------------------------------------------------------------

RNG = np.random.default_rng(0)
FEEDS = {
    "float32": RNG.standard_normal((3, 4)).astype(np.float32),
    "float64": RNG.standard_normal((3, 4)),
    "int64": RNG.integers(-5, 5, (3, 4)),
    "int8": RNG.integers(-5, 5, (3, 4)).astype(np.int8),
    "bool": RNG.random((3, 4)) < 0.5,
}


@pytest.mark.parametrize("dtype", sorted(FEEDS))
def test_zeros_and_ones_like_keep_shape_and_dtype(dtype: str) -> None:
    x = FEEDS[dtype]
    body = f"in x: {dtype}[N, 4]\nout z = zeros_like(x)\nout o = ones_like(x)"
    zeros, ones = compute(body, x)
    np.testing.assert_array_equal(zeros, np.zeros_like(x))
    np.testing.assert_array_equal(ones, np.ones_like(x))
    assert zeros.dtype == ones.dtype == x.dtype


@pytest.mark.parametrize(
    ("dtype", "value"),
    [("float32", "0.9"), ("float64", "-2.5e3"), ("int64", "-100"), ("int8", "127"), ("bool", "1")],
)
def test_full_like_fills_with_the_value_in_x_dtype(dtype: str, value: str) -> None:
    x = FEEDS[dtype]
    (got,) = compute(f"in x: {dtype}[N, 4]\nout y = full_like(x, {value})", x)
    np.testing.assert_array_equal(got, np.full_like(x, float(value)))
    assert got.dtype == x.dtype


def test_full_like_on_a_scalar_and_in_the_generated_source() -> None:
    (got,) = compute("in x: float32[]\nout y = full_like(x, 3)", np.array(7.0, np.float32))
    assert got.shape == () and got == 3.0
    source = dslnet.loads(spec("in t: int64[N]\nout y = full_like(t, 2.0)")).torch_source("S")
    assert "y = torch.full_like(t, 2)  # [N]" in source  # an int for an int tensor


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "in t: int64[N, 3]\nout y = full_like(t, 0.5)",
            "full_like: the value 0.5 is not a whole number, and x is int64[N, 3]",
        ),
        ("in t: int8[N]\nout y = full_like(t, 300)", "is out of int8's range (-128 to 127)"),
        ("in t: uint8[N]\nout y = full_like(t, -1)", "is out of uint8's range (0 to 255)"),
        ("in h: float16[N]\nout y = full_like(h, 1e6)", "is out of float16's range"),
        ("in m: bool[N]\nout y = full_like(m, 2)", "a bool holds only 0 and 1"),
    ],
)
def test_full_like_refuses_values_its_dtype_cannot_hold(body: str, message: str) -> None:
    err = compile_error(body)
    (diag,) = err.diagnostics
    assert message in diag.message
    assert (diag.span.file, diag.span.line, diag.span.col) == ("t.net", 3, 13)
    assert "^" in err.render()


def test_full_like_needs_its_value() -> None:
    err = compile_error("in x: float32[N]\nout y = full_like(x)")
    assert "full_like needs argument 'value'" in err.diagnostics[0].message


# --- detach -------------------------------------------------------------------------------


def test_detach_keeps_values_and_any_dtype() -> None:
    x, t = FEEDS["float32"], FEEDS["int64"]
    got = compute(
        "in x: float32[N, 4]\nin t: int64[N, 4]\nout a = detach(x)\nout b = t -> detach", x, t
    )
    np.testing.assert_array_equal(got[0], x)
    np.testing.assert_array_equal(got[1], t)
    source = dslnet.loads(spec("in x: float32[N, 4]\nout y = detach(x)")).torch_source("S")
    assert "y = x.detach()  # [N, 4]" in source
    model = dslnet.loads(spec("in x: float32[N, 4]\nout y = detach(x)")).onnx("S")
    assert [n.op_type for n in model.graph.node] == ["Identity"]


GAN = """
network Generator() {
    in z: float32[N, 8]
    out image = z -> linear(6) -> tanh
}

network DiscriminatorStep() {
    layer generator = Generator()
    layer judge = linear(1)
    in z: float32[N, 8]
    in real: float32[N, 6]
    fake = generator(z) -> detach
    p_real = judge(real) -> sigmoid
    p_fake = judge(fake) -> sigmoid
    out loss = bce_loss(p_real, full_like(p_real, 0.9)) + bce_loss(p_fake, zeros_like(p_fake))
}
"""


def test_a_discriminator_step_trains_the_discriminator_only() -> None:
    torch.manual_seed(0)
    prog = dslnet.loads(GAN)
    module = prog.torch("DiscriminatorStep").train()
    z, real = torch.randn(4, 8), torch.rand(4, 6)
    loss = module(z, real)
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    assert grads and all(g is None for n, g in grads.items() if n.startswith("generator."))
    judged = [g for n, g in grads.items() if n.startswith("judge.")]
    assert judged and all(g is not None and g.abs().sum() > 0 for g in judged)
    # the same loss by hand: targets 0.9 (real) and 0 (fake)
    with torch.no_grad():
        fake = module.generator(z)
        p_real, p_fake = torch.sigmoid(module.judge(real)), torch.sigmoid(module.judge(fake))
        bce = torch.nn.functional.binary_cross_entropy
        want = bce(p_real, torch.full_like(p_real, 0.9)) + bce(p_fake, torch.zeros_like(p_fake))
    torch.testing.assert_close(loss.detach(), want)
    onnx_model = prog.onnx("DiscriminatorStep", module.state_dict())
    (from_onnx,) = run_onnx(onnx_model, {"z": z.numpy(), "real": real.numpy()}).values()
    np.testing.assert_allclose(from_onnx, want.numpy(), rtol=1e-5)


# --- accuracy -----------------------------------------------------------------------------


def reference_accuracy(
    logits: np.ndarray, labels: np.ndarray, top_k: int = 1, ignore_index: int = -100
) -> float:
    """Independent of torch: rank the classes of each position by sorting."""
    scores = np.moveaxis(logits, 1, -1)  # [N, d..., C]
    best = np.argsort(-scores, axis=-1, kind="stable")[..., :top_k]
    right = (best == labels[..., None]).any(axis=-1)
    counted = labels != ignore_index
    return float((right & counted).sum() / counted.sum())


def logits_and_labels(*shape: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    return logits, labels


@pytest.mark.parametrize(
    ("shape", "attrs", "options"),
    [
        ((40, 5), "", {}),
        ((40, 5), ", top_k=3", {"top_k": 3}),
        ((6, 4, 7), "", {}),
        ((6, 4, 3, 2), ", top_k=2", {"top_k": 2}),
        ((40, 5), ", ignore_index=2", {"ignore_index": 2}),
        ((6, 4, 7), ", top_k=2, ignore_index=0", {"top_k": 2, "ignore_index": 0}),
    ],
)
def test_accuracy_matches_a_numpy_reference(
    shape: tuple[int, ...], attrs: str, options: dict[str, int]
) -> None:
    logits, labels = logits_and_labels(*shape)
    dims = ", ".join(["N", *map(str, shape[1:])])
    label_dims = ", ".join(["N", *map(str, shape[2:])])
    body = f"in x: float32[{dims}]\nin t: int64[{label_dims}]\nout acc = accuracy(x, t{attrs})"
    (got,) = compute(body, logits, labels)
    assert got.dtype == np.float32 and got.shape == ()
    want = reference_accuracy(logits, labels, **options)
    assert 0.0 < want < 1.0  # the data tells right from wrong
    assert got == pytest.approx(want, abs=1e-6)


def test_accuracy_leaves_out_ignored_labels_as_cross_entropy_does() -> None:
    logits = np.array([[3.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [5.0, 0.0, 0.0]])
    labels = np.array([0, 2, -100, -100])  # right, wrong, then two ignored
    body = "in x: float32[N, 3]\nin t: int64[N]\nout acc = accuracy(x, t)"
    (got,) = compute(body, logits.astype(np.float32), labels)
    assert got == 0.5
    (top2,) = compute(body.replace("(x, t)", "(x, t, top_k=2)"), logits.astype(np.float32), labels)
    assert top2 == 1.0


CLASSIFIER = """
in x: float32[N, 10]
in t: int64[N]
logits = x -> linear(16) -> relu -> linear(4)
out loss = cross_entropy(logits, t)
out acc = accuracy(logits, t)
"""


def test_accuracy_beside_a_loss_does_not_break_its_backward() -> None:
    torch.manual_seed(0)
    module = dslnet.loads(spec(CLASSIFIER)).torch("S").train()
    x, t = torch.randn(8, 10), torch.randint(0, 4, (8,))
    loss, acc = module(x, t)
    assert not acc.requires_grad and acc.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None for p in module.parameters())
    with torch.no_grad():
        logits = module.linear2(torch.relu(module.linear1(x)))
    assert acc.item() == pytest.approx(reference_accuracy(logits.numpy(), t.numpy()))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "in x: float32[N, 5]\nin t: int32[N]\nout acc = accuracy(x, t)",
            "accuracy: labels must be int64 class ids [N] (the logits float32[N, 5] without "
            "their class axis 1), got int32[N]",
        ),
        (
            "in x: float32[N, 5, T]\nin t: int64[N, 5]\nout acc = accuracy(x, t)",
            "labels must be int64 class ids [N, T]",
        ),
        (
            "in x: float32[N, 5]\nin t: int64[N, 5]\nout acc = accuracy(x, t)",
            "labels must be int64 class ids [N]",
        ),
        ("in x: int64[N, 5]\nin t: int64[N]\nout acc = accuracy(x, t)", "floating-point logits"),
        ("in x: float32[N]\nin t: int64[N]\nout acc = accuracy(x, t)", "rank >= 2"),
        (
            "in x: float32[N, 5]\nin t: int64[N]\nout acc = accuracy(x, t, top_k=6)",
            "accuracy: top_k=6 is more than the 5 classes",
        ),
        (
            "in x: float32[N, C]\nin t: int64[N]\nout acc = accuracy(x, t, top_k=2)",
            "accuracy needs a known number of classes C (axis 1) for top_k=2",
        ),
    ],
)
def test_accuracy_errors_are_located(body: str, message: str) -> None:
    err = compile_error(body)
    (diag,) = err.diagnostics
    assert message in diag.message
    assert (diag.span.file, diag.span.line, diag.span.col) == ("t.net", 4, 15)


def test_accuracy_top_k_must_be_positive() -> None:
    err = compile_error("in x: float32[N, 5]\nin t: int64[N]\nout acc = accuracy(x, t, top_k=0)")
    assert "argument 'top_k' of accuracy must be greater than or equal to 1" in str(err)


# --- a training spec through both backends ------------------------------------------------


def test_a_spec_using_every_training_op_compiles_to_torch_and_onnx() -> None:
    text = GAN + spec(CLASSIFIER, "Classifier")
    prog = dslnet.loads(text)
    for network in ("DiscriminatorStep", "Classifier"):
        module = prog.torch(network)
        model = prog.onnx(network, module.state_dict())
        assert [o.name for o in model.graph.output] == [n for n, _ in prog.ir(network).outputs]
    used = {n.op for name in ("DiscriminatorStep", "Classifier") for n in prog.ir(name).nodes}
    assert {"detach", "full_like", "zeros_like", "accuracy"} <= used
