"""ONNX backend: valid models, IR shapes, ORT numerics, functions, weights, determinism."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dslnet
from dslnet.backends.onnx_emit import DOMAIN, emit_onnx, run_onnx
from dslnet.core.symbolic import SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.ir.graph import Graph, Parameter
from dslnet.ir.weights import WeightsError, init_weights, load_weights
from dslnet.testing import random_inputs

if TYPE_CHECKING:
    from conftest import SpecNetwork

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"C": 2, "H": 3, "W": 4, "T": 5}  # distinct sizes catch swapped axes
Arrays = dict[str, np.ndarray]


@cache
def spec_graph(path: Path, name: str) -> Graph:
    return dslnet.load(path).ir(name)


def inline(text: str, network: str = "Net") -> Graph:
    return dslnet.loads(text, filename="t.net").ir(network)


def env_for(graph: Graph, batch: int) -> dict[str, int]:
    """A size for every symbol in the inputs: N is the batch, others fixed and distinct."""
    env = {"N": batch}
    for name in graph.inputs:
        for dim in graph.type_of(name).shape:
            if isinstance(dim, SymExpr):
                for symbol in sorted(dim.free_symbols()):
                    env.setdefault(symbol, SIZES.get(symbol, 3))
    return env


def concrete(ttype: TensorType, env: dict[str, int]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else d.evaluate(env) for d in ttype.shape)


def feeds_for(graph: Graph, batch: int, seed: int = 0) -> Arrays:
    return random_inputs(graph, env_for(graph, batch), seed)


def dims_of(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param
        for d in value_info.type.tensor_type.shape.dim
    ]


def ir_dims(ttype: TensorType) -> list[int | str]:
    return [d if isinstance(d, int) else str(d) for d in ttype.shape]


def assert_close(got: Arrays, want: Arrays, atol: float = 1e-5) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=1e-5, err_msg=name)


# --- every network in specs/ (at the size policy's widths, tests/conftest.py) ---------


@pytest.mark.parametrize("functions", [False, True], ids=["flat", "functions"])
def test_model_passes_checker_and_strict_shape_inference(
    spec_network: SpecNetwork, functions: bool
) -> None:
    model = emit_onnx(spec_network.graph(small=True), functions=functions)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def test_declared_inputs_and_outputs_are_the_irs(spec_network: SpecNetwork) -> None:
    graph = spec_network.graph(small=True)
    model = emit_onnx(graph)
    assert [v.name for v in model.graph.input] == graph.inputs
    assert [dims_of(v) for v in model.graph.input] == [
        ir_dims(graph.type_of(n)) for n in graph.inputs
    ]
    assert [v.name for v in model.graph.output] == [out for out, _ in graph.outputs]
    assert [dims_of(v) for v in model.graph.output] == [
        ir_dims(graph.type_of(value)) for _, value in graph.outputs
    ]


def test_ort_runs_at_two_batch_sizes_with_the_ir_shapes(spec_network: SpecNetwork) -> None:
    graph = spec_network.graph(small=True)
    model = emit_onnx(graph)
    for batch in (1, 5):
        env = env_for(graph, batch)
        got = run_onnx(model, feeds_for(graph, batch))
        want = {out: concrete(graph.type_of(value), env) for out, value in graph.outputs}
        assert {out: array.shape for out, array in got.items()} == want
        assert all(np.isfinite(array).all() for array in got.values())


def test_function_model_computes_what_the_flat_one_does(spec_network: SpecNetwork) -> None:
    graph = spec_network.graph(small=True)
    feeds = feeds_for(graph, 3)
    flat = run_onnx(emit_onnx(graph), feeds)
    assert_close(run_onnx(emit_onnx(graph, functions=True), feeds), flat)


def test_initializers_are_the_parameters(spec_network: SpecNetwork) -> None:
    graph = spec_network.graph(small=True)
    weights = init_weights(graph, seed=3)
    model = emit_onnx(graph, weights)
    names = [t.name for t in model.graph.initializer]
    read = [p for p in graph.parameters if p in names]
    assert names[: len(read)] == read
    # Left out: state nothing reads (batchnorm's step counter) and recurrent weights,
    # which are stored once, converted to ONNX's gate order.
    for left_out in (p for p in graph.parameters if p not in names):
        assert re.search(r"(num_batches_tracked|_[ih]h_l\d+(_reverse)?)$", left_out), left_out
    # What follows are constants made by lowerings (a reshape's target shape), named
    # after their node.
    assert all("/" in n for n in names[len(read) :])
    for tensor in model.graph.initializer[: len(read)]:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(tensor), weights[tensor.name])


def test_emission_is_byte_deterministic(spec_network: SpecNetwork) -> None:
    for functions in (False, True):
        first = emit_onnx(spec_network.graph(small=True), functions=functions)
        again = emit_onnx(spec_network.graph(small=True), functions=functions)
        assert first.SerializeToString() == again.SerializeToString()


def test_bytes_do_not_depend_on_the_hash_seed() -> None:
    script = (
        "import hashlib, dslnet\n"
        "from dslnet.backends.onnx_emit import emit_onnx\n"
        f"g = dslnet.load({str(ROOT / 'specs' / 'vit.net')!r}).ir('ViT', dim=48, depth=2)\n"
        "print(hashlib.sha256(emit_onnx(g, functions=True).SerializeToString()).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_model_metadata() -> None:
    model = emit_onnx(spec_graph(ROOT / "specs" / "autoencoder.net", "ConvAutoencoder"))
    assert model.producer_name == "dslnet"
    assert model.producer_version == dslnet.__version__
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 18)]
    assert model.ir_version == 8


@pytest.mark.parametrize("opset", [17, 18, 19, 20, 21])
def test_opsets_17_to_21_run(opset: int) -> None:
    graph = inline(BLOCKS)
    model = emit_onnx(graph, opset=opset, functions=True)
    onnx.checker.check_model(model, full_check=True)
    feeds = feeds_for(graph, 2)
    assert_close(run_onnx(model, feeds), run_onnx(emit_onnx(graph), feeds))


def test_unsupported_opset_is_refused() -> None:
    with pytest.raises(ValueError, match="opset 12 is not supported"):
        emit_onnx(inline(GELU_NET), opset=12)


def test_program_onnx_uses_the_backend() -> None:
    model = dslnet.load(ROOT / "specs" / "mlp.net").onnx("MLP", hidden=32, opset=19)
    assert model.graph.name == "MLP"
    assert [o.version for o in model.opset_import] == [19]


# --- numerics against numpy -----------------------------------------------------------


def _linear(x: np.ndarray, w: Arrays, module: str, bias: bool = True) -> np.ndarray:
    y = x @ w[f"{module}.weight"].T
    return y + w[f"{module}.bias"] if bias else y


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def test_tiny_network_matches_numpy() -> None:
    graph = inline("""
network Net() {
    in x: float32[N, 6]
    out probs = x -> linear(8) -> relu -> linear(3) -> softmax
}
""")
    weights = init_weights(graph, seed=7)
    feeds = feeds_for(graph, 4)
    hidden = np.maximum(_linear(feeds["x"], weights, "linear1"), 0.0)
    want = {"probs": _softmax(_linear(hidden, weights, "linear2"))}
    assert_close(run_onnx(emit_onnx(graph, weights), feeds), want)


@dataclass(frozen=True)
class OpCase:
    """An inline spec and its numpy reference, from the same weights and inputs."""

    id: str
    spec: str
    reference: Callable[[Arrays, Arrays], Arrays]


GELU_NET = """
network Net() {
    in x: float32[N, 6]
    out exact = gelu(x)
    out approx = gelu(x, approximate="tanh")
}
"""

OP_CASES = [
    OpCase(
        "activations",
        """
network Net() {
    in x: float32[N, 6]
    out r = relu(x)
    out s = sigmoid(x)
    out t = tanh(x)
    out d = x -> dropout(0.3)
}
""",
        lambda x, w: {
            "r": np.maximum(x["x"], 0),
            "s": 1 / (1 + np.exp(-x["x"])),
            "t": np.tanh(x["x"]),
            "d": x["x"],
        },
    ),
    OpCase("gelu", GELU_NET, lambda x, w: {"exact": _gelu(x["x"]), "approx": _gelu_tanh(x["x"])}),
    OpCase(
        "softmax_axis",
        """
network Net() {
    in x: float32[N, T, 4]
    out last = softmax(x)
    out mid = softmax(x, axis=1)
    out first = softmax(x, axis=0)
}
""",
        lambda x, w: {
            "last": _softmax(x["x"]),
            "mid": _softmax(x["x"], 1),
            "first": _softmax(x["x"], 0),
        },
    ),
    OpCase(
        "arithmetic",
        """
network Net() {
    in a: float32[N, 4]
    in b: float32[4]
    out s = a + b
    out d = a - b
    out m = a * b
    out q = a / (b * b + 1.0)
    out h = a * 0.5
}
""",
        lambda x, w: {
            "s": x["a"] + x["b"],
            "d": x["a"] - x["b"],
            "m": x["a"] * x["b"],
            "q": x["a"] / (x["b"] * x["b"] + 1.0),
            "h": x["a"] * 0.5,
        },
    ),
    OpCase(
        "flatten",
        """
network Net() {
    in x: float32[N, C, H, W]
    out f = flatten(x)
    out g = flatten(x, start_axis=2)
    out m = flatten(x, 1, 2)
    out a = flatten(x, start_axis=0)
}
""",
        lambda x, w: {
            "f": x["x"].reshape(x["x"].shape[0], -1),
            "g": x["x"].reshape(*x["x"].shape[:2], -1),
            "m": x["x"].reshape(x["x"].shape[0], -1, x["x"].shape[3]),
            "a": x["x"].reshape(-1),
        },
    ),
    OpCase(
        "flatten_scalar",
        "network Net() {\n    in s: float32[]\n    out y = flatten(s)\n}\n",
        lambda x, w: {"y": x["s"].reshape(1)},
    ),
    OpCase(
        "concat",
        """
network Net() {
    in a: float32[N, 2, 3]
    in b: float32[N, 4, 3]
    out c = concat(a, b, axis=1)
    out d = concat(a, a, a, axis=-1)
}
""",
        lambda x, w: {
            "c": np.concatenate([x["a"], x["b"]], axis=1),
            "d": np.concatenate([x["a"]] * 3, axis=-1),
        },
    ),
    OpCase(
        "linear_ranks",
        """
network Net() {
    in x: float32[N, T, 4]
    in v: float32[N, 4]
    out y = linear(x, 3)
    out z = linear(x, 2, bias=false)
    out u = linear(v, 5, bias=false)
}
""",
        lambda x, w: {
            "y": _linear(x["x"], w, "linear1"),
            "z": _linear(x["x"], w, "linear2", bias=False),
            "u": _linear(x["v"], w, "linear3", bias=False),
        },
    ),
]


@pytest.mark.parametrize("case", OP_CASES, ids=[c.id for c in OP_CASES])
def test_op_lowering_matches_numpy(case: OpCase) -> None:
    graph = inline(case.spec)
    weights = init_weights(graph, seed=1)
    feeds = feeds_for(graph, 3)
    model = emit_onnx(graph, weights)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    want = {k: v.astype(np.float32) for k, v in case.reference(feeds, weights).items()}
    assert_close(run_onnx(model, feeds), want)
    env = env_for(graph, 3)
    assert {k: concrete(graph.type_of(v), env) for k, v in graph.outputs} == {
        k: v.shape for k, v in want.items()
    }


# --- block calls as local functions ---------------------------------------------------

BLOCKS = """
block Inner(k: int) {
    in x: [N, D]
    out y = x -> linear(k) -> gelu
}
block Pass() {
    in a: [N, D]
    in b: [N, D]
    out p = a
    out q = a + b
    out r = a * 0.5
}
block Act(kind: str) {
    in x: [N, D]
    if kind == "relu" { h = relu(x) } else { h = tanh(x) }
    out y = h
}
block Outer(k: int) {
    in x: [N, D]
    h = x -> Inner(k) -> Inner(D)
    s, t, u = Pass(h, x)
    out z = s + t + u -> Act("relu") -> Act("tanh")
}
network Net() {
    layer enc = Outer(8)
    in a: float32[N, 4]
    in b: float32[N, 4]
    out d = enc(a) - enc(b)
    out e = a
    out f = Inner(b, 4)
}
"""


def test_nested_shared_blocks_as_functions() -> None:
    graph = inline(BLOCKS)
    model = emit_onnx(graph, functions=True)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    names = [f.name for f in model.functions]
    # equal bodies share one function; a block whose body differs per call gets two
    assert sorted(names) == ["Act", "Act_2", "Inner", "Outer", "Pass"]
    assert all(f.domain == DOMAIN for f in model.functions)
    calls = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.op_type for n in calls] == ["Outer", "Outer", "Inner"]
    inner = next(f for f in model.functions if f.name == "Inner")
    assert list(inner.input) == ["x", "linear1.weight", "linear1.bias"]
    assert list(inner.output) == ["y"]
    feeds = feeds_for(graph, 4)
    assert_close(run_onnx(model, feeds), run_onnx(emit_onnx(graph), feeds))


def test_functions_keep_the_parameters_as_initializers() -> None:
    graph = spec_graph(ROOT / "specs" / "mlp.net", "ResidualMLP")
    model = emit_onnx(graph, functions=True)
    assert [t.name for t in model.graph.initializer] == list(graph.parameters)
    assert [f.name for f in model.functions] == ["ResidualBlock"]
    calls = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.name for n in calls] == ["residual_block1", "residual_block2", "residual_block3"]


def test_output_names_that_clash_with_values() -> None:
    graph = inline("""
network Net() {
    in x: float32[N, 4]
    h = relu(x)
    y = tanh(h)
    out y = sigmoid(h)
    out h = h
    out x = x
}
""")
    model = emit_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    feeds = feeds_for(graph, 2)
    got = run_onnx(model, feeds)
    x = feeds["x"]
    want = {"y": 1 / (1 + np.exp(-np.maximum(x, 0))), "h": np.maximum(x, 0), "x": x}
    assert_close(got, {k: v.astype(np.float32) for k, v in want.items()})


def test_output_named_like_an_input_is_refused() -> None:
    # The checker refuses the spec, located; the emitter still guards graphs made otherwise.
    with pytest.raises(dslnet.CompileError, match="output 'y' has the name of an input"):
        inline("network Net() {\n in y: float32[N, 4]\n out y = relu(y)\n}\n")
    graph = inline("network Net() {\n in y: float32[N, 4]\n out z = relu(y)\n}\n")
    graph.outputs = [("y", graph.outputs[0][1])]
    with pytest.raises(ValueError, match="output 'y' has the name of an input"):
        emit_onnx(graph)


# --- weights --------------------------------------------------------------------------


def test_init_weights_are_seeded_and_drawn_once_per_shared_layer() -> None:
    graph = inline("""
network Net() {
    layer fc = linear(8)
    in a: float32[N, 4]
    in b: float32[N, 4]
    out d = fc(a) - (b -> fc)
}
""")
    first, again, other = init_weights(graph, 0), init_weights(graph, 0), init_weights(graph, 1)
    assert list(first) == ["fc.weight", "fc.bias"]
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["fc.weight"], other["fc.weight"])
    assert first["fc.weight"].dtype == np.float32
    assert np.abs(first["fc.weight"]).max() <= 1 / math.sqrt(4)
    model = emit_onnx(graph)
    assert [t.name for t in model.graph.initializer] == ["fc.weight", "fc.bias"]


def test_init_schemes_are_honoured() -> None:
    graph = inline("""
network Net() {
    in x: float32[N, 64]
    out y = x -> linear(32, init="zeros") -> linear(16, init="kaiming") -> linear(8)
}
""")
    w = init_weights(graph)
    assert not w["linear1.weight"].any() and not w["linear1.bias"].any()
    assert abs(float(w["linear2.weight"].std()) - math.sqrt(2 / 32)) < 0.05
    assert not w["linear2.bias"].any()  # biases start at zero under a scheme
    assert np.abs(w["linear3.weight"]).max() <= 1 / 4 and w["linear3.bias"].any()


def test_buffers_keep_their_dtype() -> None:
    graph = Graph(
        name="G",
        parameters={
            "bn.weight": Parameter(name="bn.weight", module="bn", role="weight", shape=(3,)),
            "bn.count": Parameter(
                name="bn.count", module="bn", role="count", shape=(), dtype=DType.int64, buffer=True
            ),
        },
    )
    loaded = load_weights({"bn.weight": np.ones(3), "bn.count": np.array(7)}, graph)
    assert loaded["bn.weight"].dtype == np.float32
    assert loaded["bn.count"].dtype == np.int64 and loaded["bn.count"].shape == ()
    with pytest.raises(
        WeightsError, match=r"'bn\.count' has dtype float32, the network needs int64"
    ):
        load_weights({"bn.weight": np.ones(3), "bn.count": np.array(7.0, np.float32)}, graph)


def _mlp() -> Graph:
    return spec_graph(ROOT / "specs" / "mlp.net", "MLP")


def test_load_weights_lists_every_problem() -> None:
    graph = _mlp()
    state: dict[str, Any] = dict(init_weights(graph))
    del state["linear1.bias"]
    state["linear2.weight"] = np.zeros((128, 256), np.float32)
    state["linear3.bias"] = np.zeros(10, np.int64)
    state["linear9.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(WeightsError) as info:
        load_weights(state, graph)
    problems = info.value.problems
    assert problems == [
        "weight 'linear1.bias' is missing (the network needs [256])",
        "weight 'linear2.weight' has shape [128, 256], the network needs [256, 256]",
        "weight 'linear3.bias' has dtype int64, the network needs float32",
        "weight 'linear9.weight' [3, 3] is not a parameter of network 'MLP'"
        " (did you mean 'linear1.bias'?)",
    ]
    assert "4 problems" in str(info.value)


def test_load_weights_refuses_what_is_not_a_tensor_or_a_file(tmp_path: Path) -> None:
    graph = _mlp()
    with pytest.raises(WeightsError, match=r"'linear1\.weight' is a list, not a tensor"):
        load_weights({**init_weights(graph), "linear1.weight": [1.0]}, graph)
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "none.safetensors", graph)
    odd = tmp_path / "w.npz"
    odd.write_bytes(b"")
    with pytest.raises(WeightsError, match=r"use a \.safetensors, \.pt or \.pth file"):
        load_weights(odd, graph)
    with pytest.raises(WeightsError, match="a mapping of name to tensor or a file path"):
        load_weights(42, graph)  # type: ignore[arg-type]


def test_safetensors_round_trip(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    graph = _mlp()
    weights = init_weights(graph, seed=11)
    path = tmp_path / "mlp.safetensors"
    save_file(weights, str(path))
    loaded = load_weights(path, graph)
    assert list(loaded) == list(graph.parameters)
    feeds = feeds_for(graph, 2)
    assert_close(
        run_onnx(emit_onnx(graph, path), feeds), run_onnx(emit_onnx(graph, weights), feeds)
    )


def test_torch_state_dict_and_file_give_the_torch_output(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    program = dslnet.load(ROOT / "specs" / "mlp.net")
    graph = program.ir("ResidualMLP")
    module = program.torch("ResidualMLP").eval()
    feeds = feeds_for(graph, 3)
    with torch.no_grad():
        want = module(torch.from_numpy(feeds["x"])).numpy()
    from_dict = run_onnx(emit_onnx(graph, module.state_dict()), feeds)["logits"]
    np.testing.assert_allclose(from_dict, want, atol=1e-4)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": module.state_dict(), "epoch": 3}, path)
    np.testing.assert_allclose(run_onnx(emit_onnx(graph, path), feeds)["logits"], want, atol=1e-4)
    half = {k: v.to(torch.bfloat16) for k, v in module.state_dict().items()}
    assert load_weights(half, graph)["linear1.weight"].dtype == np.float32


class _NotATensor:
    pass


def test_torch_file_is_read_without_arbitrary_pickle(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "evil.pth"
    torch.save({"linear1.weight": _NotATensor()}, path)
    with pytest.raises(WeightsError, match="cannot read weights from"):
        load_weights(path, _mlp())


# --- other execution providers --------------------------------------------------------


def test_cuda_provider_matches_cpu() -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime here has no CUDAExecutionProvider (needs onnxruntime-gpu + CUDA)")
    graph = spec_graph(ROOT / "specs" / "mlp.net", "ResidualMLP")
    model = emit_onnx(graph)
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    feeds = feeds_for(graph, 8)
    gpu = run_onnx(model, feeds, ["CUDAExecutionProvider"])
    # TF32 matmuls on recent GPUs round to ~1e-3 relative
    assert_close(gpu, run_onnx(model, feeds), atol=1e-3)


def test_fast_serialization_is_the_models_bytes(spec_network: SpecNetwork) -> None:
    from dslnet.backends.onnx_emit import emit_onnx_bytes

    graph = spec_network.graph(small=True)
    for functions in (False, True):
        data = emit_onnx_bytes(graph, functions=functions)
        model = emit_onnx(graph, functions=functions)
        assert data == model.SerializeToString()
        assert onnx.load_from_string(data) == model


def test_fast_serialization_of_a_weight_of_megabytes() -> None:
    """A 4 MB weight: the lengths in the wire format take four bytes (the networks of
    specs/ run small above; full size, ResNet's weights are this big)."""
    from dslnet.backends.onnx_emit import emit_onnx_bytes

    graph = inline("network Net() {\n    in x: float32[N, 1024]\n    out y = linear(x, 1024)\n}\n")
    data = emit_onnx_bytes(graph)
    assert len(data) > 1 << 22
    assert data == emit_onnx(graph).SerializeToString()


def test_integer_arithmetic_with_whole_constants_keeps_its_dtype_in_both_backends() -> None:
    """`ids * 2 + 1` on int64 stays int64 in torch (an int scalar, not 2.0) and in ONNX."""
    import torch

    prog = dslnet.loads(
        "network Ids() {\n    in ids: int64[N, 4]\n    out y = ids * 2 + 1 - ids\n}\n",
        filename="ids.net",
    )
    ids = np.arange(8, dtype=np.int64).reshape(2, 4)
    got = prog.torch("Ids")(torch.from_numpy(ids))
    want = run_onnx(prog.onnx("Ids"), {"ids": ids})["y"]
    assert got.dtype == torch.int64 and want.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), ids + 1)
    np.testing.assert_array_equal(want, ids + 1)
