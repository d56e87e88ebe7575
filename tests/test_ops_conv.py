"""Convolution, pooling, unpooling, upsampling and padding ops against PyTorch and ORT.

Shape rules are compared with the shapes PyTorch actually returns (and its refusals)
over grids of window settings; numerics run the generated module and the ONNX model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dslnet
from dslnet.backends.onnx_emit import emit_onnx, run_onnx
from dslnet.core.symbolic import Dim, SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.ops import registry
from dslnet.ops.registry import AttrError, ShapeError

N, H, W = SymExpr.symbol("N"), SymExpr.symbol("H"), SymExpr.symbol("W")


def t(*shape: Dim, dtype: DType = DType.float32) -> TensorType:
    return TensorType(dtype=dtype, shape=shape)


def infer(name: str, *inputs: TensorType, **attrs: Any) -> tuple[TensorType, ...]:
    op = registry.get(name)
    assert op is not None
    return op.infer(op.bind_attrs([], attrs), list(inputs))


def our_shape(name: str, shape: tuple[int, ...], **attrs: Any) -> tuple[Dim, ...] | None:
    try:
        return infer(name, t(*shape), **attrs)[0].shape
    except ShapeError:
        return None


def torch_shape(run: Callable[[], torch.Tensor]) -> tuple[int, ...] | None:
    try:
        return tuple(run().shape)
    except (RuntimeError, ValueError):
        return None


def compile_net(body: str) -> dslnet.Program:
    text = "network T() {\n" + "\n".join("    " + line for line in body.splitlines()) + "\n}\n"
    return dslnet.loads(text, filename="t.net")


def torch_and_ort(prog: dslnet.Program, feeds: dict[str, np.ndarray], functions: bool = False):
    module = prog.torch("T").eval()
    model = emit_onnx(prog.ir("T"), module.state_dict(), functions=functions)
    with torch.no_grad():
        ours = module(*(torch.from_numpy(a) for a in feeds.values()))
    ours = [ours] if isinstance(ours, torch.Tensor) else list(ours)
    return [o.numpy() for o in ours], list(run_onnx(model, feeds).values())


# --- shape rules against the shapes PyTorch returns --------------------------------------

CONV_GRID = itertools.product(
    range(1, 10), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2, "same", "valid"), (1, 2)
)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_shapes_match_torch() -> None:
    checked = 0
    for L, k, s, p, d in CONV_GRID:
        x, w = torch.zeros(1, 2, L), torch.zeros(3, 2, k)
        expected = torch_shape(lambda: F.conv1d(x, w, None, s, p, d))  # noqa: B023
        attrs = {"kernel_size": k, "stride": s, "padding": p, "dilation": d}
        assert our_shape("conv1d", (1, 2, L), out_channels=3, **attrs) == expected, attrs
        checked += expected is not None
    assert checked > 300


def test_conv_transpose_shapes_match_torch() -> None:
    grid = itertools.product((1, 2, 5), (1, 2, 3), (1, 2, 3), (0, 1, 2), (0, 1, 2), (1, 2))
    for L, k, s, p, extra, d in grid:
        x, w = torch.zeros(1, 2, L), torch.zeros(2, 3, k)
        expected = torch_shape(
            lambda: F.conv_transpose1d(x, w, None, s, p, extra, 1, d)  # noqa: B023
        )
        if extra >= s:  # PyTorch takes it below the dilation; ONNX Runtime never: refused
            expected = None
        attrs = {"kernel_size": k, "stride": s, "padding": p, "output_padding": extra}
        got = our_shape("conv_transpose1d", (1, 2, L), out_channels=3, dilation=d, **attrs)
        assert got == expected, (L, attrs, d)


@pytest.mark.parametrize("kind", ["max", "avg", "lp"])
def test_pool_shapes_match_torch_with_ceil_mode(kind: str) -> None:
    grid = itertools.product(range(1, 10), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2), (1, 2, 3))
    for (L, k, s, p, d), ceil in itertools.product(grid, (False, True)):
        if (kind != "max" and d > 1) or (kind == "lp" and p > 0):
            continue
        x = torch.zeros(1, 1, L)
        attrs: dict[str, Any] = {"kernel_size": k, "stride": s, "ceil_mode": ceil}
        if kind == "max":
            attrs |= {"padding": p, "dilation": d}
            run = lambda: F.max_pool1d(x, k, s, p, d, ceil_mode=ceil)  # noqa: B023, E731
        elif kind == "avg":
            attrs["padding"] = p
            run = lambda: F.avg_pool1d(x, k, s, p, ceil_mode=ceil)  # noqa: B023, E731
        else:
            run = lambda: F.lp_pool1d(x + 1, 2.0, k, s, ceil_mode=ceil)  # noqa: B023, E731
            attrs["norm_type"] = 2.0
        expected = torch_shape(run)
        if kind == "max" and expected is not None and run().isinf().any():
            expected = None  # a window wholly in the padding: refused (-inf in torch only)
        assert our_shape(f"{kind}pool1d", (1, 1, L), **attrs) == expected, (L, attrs)


def test_pool2d_and_unpool_shapes_match_torch() -> None:
    x = torch.zeros(1, 1, 7, 4)
    kernels, strides, pads = ((2, 3), (3, 1), 3), (None, 2, (1, 2)), (0, 1, (1, 0))
    for k, s, p, ceil in itertools.product(kernels, strides, pads, (False, True)):
        attrs = {"kernel_size": k, "stride": s, "padding": p}
        got = our_shape("maxpool2d", (1, 1, 7, 4), ceil_mode=ceil, **attrs)
        expected = torch_shape(lambda: F.max_pool2d(x, k, s, p, ceil_mode=ceil))  # noqa: B023
        assert got == expected, (attrs, ceil)
        if expected is None:
            continue
        y, i = F.max_pool2d(x, k, s, p, ceil_mode=ceil, return_indices=True)
        unpooled = torch_shape(lambda: F.max_unpool2d(y, i, k, s, p))  # noqa: B023
        if unpooled is None:  # an index beyond the default size (a lossy pooling)
            continue
        pooled, indices = t(*y.shape), t(*y.shape, dtype=DType.int64)
        assert infer("max_unpool2d", pooled, indices, **attrs)[0].shape == unpooled


def test_upsample_and_pad_shapes_match_torch() -> None:
    for L, f in itertools.product(range(1, 9), (0.3, 0.5, 0.75, 1.25, 1.5, 2.0, 2.5, 3.0)):
        x = torch.zeros(1, 1, L)
        expected = torch_shape(lambda: F.interpolate(x, scale_factor=f))  # noqa: B023
        assert our_shape("upsample", (1, 1, L), scale_factor=f) == expected, (L, f)
    pads = ((1, 2), (-2, 1), (3, 0), (2, 2, 1, 0), (1, 1, 1, 1, 1, 1))
    modes = ("constant", "reflect", "replicate", "circular")
    for rank, pad, mode in itertools.product((2, 3, 4, 5), pads, modes):
        shape = (2, 3, 3, 4, 3)[:rank]
        expected = torch_shape(lambda: F.pad(torch.zeros(shape), pad, mode=mode))  # noqa: B023
        got = our_shape("pad", shape, padding=pad, mode=mode)
        if mode != "constant" and min(pad) < 0:
            assert got is None  # stricter than PyTorch: no cropping in the wrapping modes
            continue
        assert got == expected, (shape, pad, mode)


# --- symbolic rules -----------------------------------------------------------------------

HALF_PLUS_ONE = "floor((H - 1)/2) + 1, floor((W - 1)/2) + 1"


@pytest.mark.parametrize(
    ("name", "attrs", "expected"),
    [
        ("conv2d", {"out_channels": 64, "k": 7, "s": 2, "p": 3}, f"[N, 64, {HALF_PLUS_ONE}]"),
        ("conv2d", {"out_channels": 8, "k": 3, "p": "same"}, "[N, 8, H, W]"),
        ("conv2d", {"out_channels": 8, "k": (3, 1), "d": 2}, "[N, 8, H - 4, W]"),
        ("conv_transpose2d", {"out_channels": 4, "k": 4, "s": 2, "p": 1}, "[N, 4, 2*H, 2*W]"),
        ("maxpool2d", {"kernel_size": 2}, "[N, 3, floor(H/2), floor(W/2)]"),
        ("maxpool2d", {"kernel_size": 3, "p": 1, "s": 2}, f"[N, 3, {HALF_PLUS_ONE}]"),
        (
            "maxpool2d",
            {"kernel_size": 3, "s": 2, "ceil_mode": True},
            "[N, 3, floor(H/2), floor(W/2)]",
        ),
        ("avgpool2d", {"kernel_size": 3, "s": 1, "p": 1}, "[N, 3, H, W]"),
        ("adaptive_avgpool2d", {"output_size": 1}, "[N, 3, 1, 1]"),
        ("global_maxpool", {}, "[N, 3, 1, 1]"),
        ("upsample", {"scale_factor": 2}, "[N, 3, 2*H, 2*W]"),
        ("upsample", {"scale_factor": (1.5, 0.5)}, "[N, 3, floor(3*H/2), floor(W/2)]"),
        ("pad", {"padding": (1, 2, 3, 4)}, "[N, 3, H + 7, W + 3]"),
    ],
)
def test_symbolic_shapes(name: str, attrs: dict[str, Any], expected: str) -> None:
    (out,) = infer(name, t(N, 3, H, W), **attrs)
    assert str(out) == "float32" + expected
    for h, w in ((224, 224), (13, 7), (6, 5)):  # the formula agrees with the fixed rule
        (fixed,) = infer(name, t(2, 3, h, w), **attrs)
        env = {"N": 2, "H": h, "W": w}
        assert tuple(d if isinstance(d, int) else d.evaluate(env) for d in out.shape) == fixed.shape


def test_stride_2_conv_halves_224() -> None:
    (out,) = infer("conv2d", t(N, 3, 224, 224), out_channels=64, k=7, s=2, p=3)
    assert str(out) == "float32[N, 64, 112, 112]"


def test_conv_flops_are_macs() -> None:
    op = registry.get("conv2d")
    assert op is not None
    attrs = op.bind_attrs([64, 7], {"s": 2, "p": 3, "bias": False})
    x = t(1, 3, 224, 224)
    assert op.flops(attrs, [x], op.infer(attrs, [x])) == 112 * 112 * 64 * 3 * 49  # 118M
    depthwise = op.bind_attrs([32, 3], {"p": 1, "groups": 32})
    x = t(N, 32, H, W)
    assert str(op.flops(depthwise, [x], op.infer(depthwise, [x]))) == "288*H*N*W"


# --- parameters and initialisation --------------------------------------------------------

PARAM_NET = """in x: float32[N, 6, 9, 9]
a = x -> conv2d(12, k=3, groups=3)
b = a -> conv2d(12, k=(1, 3), bias=false, groups=12)
c = b -> conv_transpose2d(8, 4, s=2, groups=4)
out y = c -> conv_transpose2d(5, 3, bias=false)"""


def test_parameter_counts_and_shapes_match_torch_modules() -> None:
    reference = [
        nn.Conv2d(6, 12, 3, groups=3),
        nn.Conv2d(12, 12, (1, 3), bias=False, groups=12),
        nn.ConvTranspose2d(12, 8, 4, stride=2, groups=4),
        nn.ConvTranspose2d(8, 5, 3, bias=False),
    ]
    graph = compile_net(PARAM_NET).ir("T")
    assert graph.num_parameters == sum(p.numel() for m in reference for p in m.parameters())
    ours = [p.shape for p in graph.parameters.values()]
    assert ours == [tuple(p.shape) for m in reference for p in m.parameters()]


def test_init_matches_torch_bounds() -> None:
    """Same U(-b, b) as PyTorch: ConvTranspose's fan_in is out_channels/groups * kernel."""
    rng = np.random.default_rng(0)
    grouped = {"groups": 2}
    cases = [
        ("conv2d", [16, 3], grouped, (1, 8, 5, 5), nn.Conv2d(8, 16, 3, groups=2)),
        ("conv_transpose2d", [6, 3], grouped, (1, 8, 5, 5), nn.ConvTranspose2d(8, 6, 3, groups=2)),
        ("conv1d", [4, 5], {}, (1, 3, 9), nn.Conv1d(3, 4, 5)),
    ]
    for name, args, kwargs, shape, module in cases:
        op = registry.get(name)
        assert op is not None
        attrs = op.bind_attrs(args, kwargs)
        for role, param in module.named_parameters():
            ours = op.init_param(attrs, role, [t(*shape)], rng)
            bound = 1 / math.sqrt(module.weight.shape[1] * math.prod(module.weight.shape[2:]))
            assert ours.shape == tuple(param.shape)
            assert ours.dtype == np.float32
            assert np.abs(ours).max() <= bound and param.abs().max().item() <= bound
            if ours.size >= 100:
                assert np.abs(ours).max() > 0.9 * bound, (name, role)


# --- errors -------------------------------------------------------------------------------

C = SymExpr.symbol("C")
SHAPE_ERRORS = [
    ("conv2d", t(N, 3, 3, 3), {"out_channels": 8, "k": 7, "p": 1},
     "conv2d: kernel 7 (dilated 7) is larger than the padded input 5 (H=3 + 2*1) "
     "on axis 2 of float32[N, 3, 3, 3]"),
    ("conv1d", t(N, 3, 9), {"out_channels": 4, "k": 3, "d": 5},
     "conv1d: kernel 3 (dilated 11) is larger than the padded input 9 (L=9 + 2*0) "
     "on axis 2 of float32[N, 3, 9]"),
    ("conv2d", t(N, 6, H, W), {"out_channels": 8, "k": 3, "groups": 4},
     "conv2d: groups=4 must divide the input channels 6 of float32[N, 6, H, W]"),
    ("conv2d", t(N, 6, H, W), {"out_channels": 8, "k": 3, "groups": 3},
     "conv2d: groups=3 must divide out_channels 8"),
    ("conv2d", t(N, 3, H, W), {"out_channels": 8, "k": 3, "s": 2, "p": "same"},
     "conv2d: padding='same' needs stride 1 (as in PyTorch), got stride 2 for float32[N, 3, H, W]"),
    ("conv_transpose2d", t(N, 3, H, W), {"out_channels": 8, "k": 3, "s": 2, "output_padding": 2},
     "conv_transpose2d: output_padding 2 on axis 2 must be smaller than the stride (2)"),
    ("conv2d", t(N, C, H, W), {"out_channels": 8, "k": 3},
     "conv2d needs a known channel count (axis 1), but the input is float32[N, C, H, W]"),
    ("conv2d", t(N, 3, H), {"out_channels": 8, "k": 3},
     "conv2d needs a 4-D input [N, C, H, W], got float32[N, 3, H]"),
    ("maxpool2d", t(N, 3, H, W), {"kernel_size": 3, "p": 2},
     "maxpool2d: padding 2 on axis 2 is more than half the kernel 3"),
    ("max_unpool1d", t(N, 3, 4), {"kernel_size": 2, "output_size": 10},
     "max_unpool1d: output_size 10 on axis 2 must lie strictly between 6 and 10"),
    ("upsample", t(N, 3, H, W), {"size": 4, "scale_factor": 2.0},
     "upsample takes exactly one of size and scale_factor"),
    ("upsample", t(N, 3, H), {"scale_factor": 2.0, "mode": "bilinear"},
     "upsample: mode 'bilinear' needs a 4-D input"),
    ("upsample", t(N, 3, H), {"scale_factor": 0.3},
     "upsample: the size of axis 2 of float32[N, 3, H] times 0.3 has no exact symbolic form"),
    ("pad", t(N, 3, 4), {"padding": (4, 0), "mode": "reflect"},
     "pad: reflect padding 4 on axis 2 of float32[N, 3, 4] must be at most 3"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "x", "attrs", "message"), SHAPE_ERRORS)
def test_shape_errors(name: str, x: TensorType, attrs: dict[str, Any], message: str) -> None:
    inputs = [x, x.model_copy(update={"dtype": DType.int64})] if "unpool" in name else [x]
    with pytest.raises(ShapeError) as err:
        infer(name, *inputs, **attrs)
    assert message in str(err.value)


ATTR_ERRORS = [
    ("conv2d", [8, (3, 3, 3)], {},
     "argument 'kernel_size' of conv2d must be an int >= 1 or a tuple of 2 such ints, "
     "got tuple (int 3, int 3, int 3)"),
    ("conv2d", [8, 3], {"p": "full"},
     "argument 'padding' of conv2d must be an int, a tuple of ints or one of 'same', 'valid', "
     "got str 'full'"),
    ("conv2d", [8, 3], {"s": 0}, "argument 'stride' of conv2d must be an int >= 1"),
    ("maxpool1d", [2], {"padding": -1}, "argument 'padding' of maxpool1d must be an int >= 0"),
    ("pad", [(1, 2, 3)], {}, "argument 'padding' of pad needs (begin, end) pairs"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "kwargs", "message"), ATTR_ERRORS)
def test_attribute_errors(name: str, args: list[Any], kwargs: dict[str, Any], message: str) -> None:
    op = registry.get(name)
    assert op is not None
    with pytest.raises(AttrError) as err:
        op.bind_attrs(args, kwargs)
    (only,) = err.value.messages  # one message, even for a union-typed attribute
    assert message in only


def test_error_points_at_the_call_in_the_spec() -> None:
    with pytest.raises(dslnet.CompileError) as err:
        compile_net("in x: float32[N, 3, 3, 3]\nout y = x -> conv2d(8, k=7, p=1)").ir("T")
    text = str(err.value)
    assert "t.net:3:" in text and "is larger than the padded input 5 (H=3 + 2*1)" in text


# --- numerics: torch vs ONNX Runtime --------------------------------------------------------

ROUND_TRIP = """in x: float32[N, 3, H, W]
p, i = maxpool2d(x, 3, s=2, p=1, ceil_mode=true, return_indices=true)
out y = max_unpool2d(p, i, 3, s=2, p=1, output_size=(9, 8))
out i = i"""


@pytest.mark.parametrize("functions", [False, True])
def test_maxpool_indices_and_unpool_round_trip(functions: bool) -> None:
    prog = compile_net(ROUND_TRIP)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    (y, i), (y_ort, i_ort) = torch_and_ort(prog, {"x": x}, functions)
    assert i.dtype == i_ort.dtype == np.int64
    np.testing.assert_array_equal(i_ort, i)
    np.testing.assert_array_equal(y_ort, y)
    # each maximum went back where it came from; every other place is zero
    flat_i, flat_x, flat_y = i.reshape(2, 3, -1), x.reshape(2, 3, -1), y.reshape(2, 3, -1)
    kept = np.take_along_axis(flat_x, flat_i, axis=2)
    np.testing.assert_array_equal(np.take_along_axis(flat_y, flat_i, axis=2), kept)
    assert np.count_nonzero(y) == sum(np.unique(plane).size for plane in flat_i.reshape(6, -1))


def test_unpool_of_symbolic_size_round_trip() -> None:
    for spatial, shape in ((1, "[N, C, L]"), (3, "[N, C, D, H, W]")):
        prog = compile_net(
            f"in x: float32{shape}\n"
            f"p, i = maxpool{spatial}d(x, 2, return_indices=true)\n"
            f"out y = max_unpool{spatial}d(p, i, 2)"
        )
        rng = np.random.default_rng(spatial)
        for dims in ((1, 2, 4, 6, 8), (3, 1, 2, 2, 4)):
            x = rng.standard_normal(dims[: spatial + 2]).astype(np.float32)
            (ours,), (ort,) = torch_and_ort(prog, {"x": x})
            np.testing.assert_array_equal(ort, ours)


UPSAMPLE_CASES = [
    "scale_factor=2",
    "scale_factor=1.5",
    "scale_factor=(1.25, 0.5)",
    "scale_factor=3",
    "size=(5, 7)",
    "size=1",
    'scale_factor=2, mode="bilinear"',
    'scale_factor=1.5, mode="bilinear"',
    'scale_factor=(0.5, 2.5), mode="bilinear", align_corners=true',
    'size=(1, 4), mode="bilinear"',
    'size=(7, 3), mode="bilinear", align_corners=true',
]


@pytest.mark.parametrize("call", UPSAMPLE_CASES)
def test_upsample_matches_torch_in_ort(call: str) -> None:
    """At sizes that PyTorch leaves as they are (3 * 1.25 -> 3) too."""
    prog = compile_net(f"in x: float32[N, 2, H, W]\nout y = x -> upsample({call})")
    module = prog.torch("T").eval()
    model = emit_onnx(prog.ir("T"), module.state_dict())
    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (2, 3), (3, 3), (4, 5), (7, 2), (10, 13)):
        x = rng.standard_normal((2, 2, h, w)).astype(np.float32)
        with torch.no_grad():
            try:
                ours = module(torch.from_numpy(x)).numpy()
            except RuntimeError:  # an empty output
                continue
        ort = run_onnx(model, {"x": x})["y"]
        assert ort.shape == ours.shape, (call, h, w)
        np.testing.assert_allclose(ort, ours, atol=1e-5, rtol=0, err_msg=f"{call} at {h}x{w}")


@pytest.mark.parametrize(
    ("shape", "call"),
    [
        ("[N, 2, L]", 'scale_factor=1.5, mode="linear"'),
        ("[N, 2, L]", 'size=9, mode="linear", align_corners=true'),
        ("[N, 2, D, H, W]", 'scale_factor=(1.5, 2, 0.5), mode="trilinear"'),
        ("[N, 2, D, H, W]", 'size=(3, 4, 5), mode="trilinear", align_corners=true'),
    ],
)
def test_linear_and_trilinear_match_torch_in_ort(shape: str, call: str) -> None:
    prog = compile_net(f"in x: float32{shape}\nout y = x -> upsample({call})")
    rng = np.random.default_rng(0)
    for size in (2, 5):
        x = rng.standard_normal((2, 2, *(size,) * (shape.count(",") - 1))).astype(np.float32)
        (ours,), (ort,) = torch_and_ort(prog, {"x": x})
        np.testing.assert_allclose(ort, ours, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_with_even_kernels_matches_torch() -> None:
    prog = compile_net(
        'in x: float32[N, 2, H, W]\nout y = x -> conv2d(3, k=(2, 4), p="same", d=(3, 1))'
    )
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 5)).astype(np.float32)
    (ours,), (ort,) = torch_and_ort(prog, {"x": x})
    assert ours.shape == (2, 3, 6, 5)
    np.testing.assert_allclose(ort, ours, atol=1e-5, rtol=0)


def test_lppool_follows_torch_not_onnx_lppool() -> None:
    """PyTorch raises the signed sum to 1/p and rescales partial ceil_mode windows."""
    prog = compile_net("in x: float32[N, 2, 7, 5]\nout y = x -> lppool2d(3, 2, ceil_mode=true)")
    x = np.abs(np.random.default_rng(0).standard_normal((2, 2, 7, 5))).astype(np.float32)
    (ours,), (ort,) = torch_and_ort(prog, {"x": x})
    assert ours.shape == (2, 2, 4, 3)
    np.testing.assert_allclose(ort, ours, atol=1e-5, rtol=0)


# --- generated code ------------------------------------------------------------------------

CODE_NET = """in x: float32[N, 3, H, W]
a = x -> conv2d(64, k=7, s=2, p=3, bias=false) -> maxpool2d(3, s=2, p=1)
b = a -> conv2d(64, 3, p="same", groups=64) -> avgpool2d(2, s=2)
c = b -> conv_transpose2d(32, (4, 2), s=2, p=1, output_padding=(1, 0))
d = c -> upsample(scale_factor=2, mode="bilinear") -> pad((1, 1, 2, 2), mode="reflect")
out y = d -> adaptive_avgpool2d(1) -> global_avgpool"""


def test_generated_torch_code_reads_like_hand_written() -> None:
    source = compile_net(CODE_NET).torch_source("T")
    for line in (
        "nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)",
        "F.max_pool2d(conv2d1, 3, stride=2, padding=1)",
        'nn.Conv2d(64, 64, 3, padding="same", groups=64)',
        "F.avg_pool2d(conv2d2, 2)",
        "nn.ConvTranspose2d(64, 32, (4, 2), stride=2, padding=1, output_padding=(1, 0))",
        'F.interpolate(c, scale_factor=2.0, mode="bilinear")',
        'F.pad(upsample1, (1, 1, 2, 2), mode="reflect")',
        "F.adaptive_avg_pool2d(d, 1)",
        ".mean((2, 3), keepdim=True)",
    ):
        assert line in source, f"{line}\n---\n{source}"
