"""Users' own ops: registered from Python or by an installed package's entry point,
used in specs like built-in ones, and checked with the same conformance helper.

Every op here registers inside `registry.scoped()`, so none leaks into other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import BaseModel, Field

import dslnet
from dslnet import opdocs
from dslnet.backends.onnx_emit import run_onnx
from dslnet.cli import main
from dslnet.ops import (
    NO_PLUGINS_ENV,
    OnnxNodeContext,
    OpAttrs,
    OpDef,
    OpDefinitionError,
    ParamRoles,
    PluginError,
    ShapeError,
    TensorType,
    load_plugins,
    need_static,
    register,
    registry,
    unregister,
)
from dslnet.testing import assert_close, check_example, check_op, random_inputs, torch_outputs

# --- two users' ops: one with a learned parameter, one functional with two inputs -------

CHANNEL_SCALE_MODULE = '''class ChannelScale(nn.Module):
    """Each channel (axis 1) times its own learned scale."""

    def __init__(self, channels: int, rank: int, value: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), value))
        self.view = (-1,) + (1,) * (rank - 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(self.view)
'''


class ChannelScaleAttrs(OpAttrs):
    value: float = Field(1.0, description="every scale's first value")


class ChannelScale(OpDef):
    name = "channel_scale"
    family = "user"
    doc = "Multiplies each channel (axis 1) by its own learned scale."
    Attrs = ChannelScaleAttrs
    positional = ("value",)  # a user's op is all keyword-only unless it says so
    param_roles = ParamRoles(weight="weight")  # what an init= scheme draws
    examples = (
        "in x: float32[N, 4, H, W]\nout y = channel_scale(x)",
        "in x: float32[N, 3, T]\nout y = x -> channel_scale(0.5)",
    )
    torch_helpers = CHANNEL_SCALE_MODULE

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        (x,) = inputs
        if x.rank < 2 or not x.dtype.is_float:
            raise ShapeError(f"channel_scale needs a floating-point input [N, C, ...], got {x}")
        self.channel_count(x)
        return (x,)

    def channel_count(self, x: TensorType) -> int:
        return need_static(x.shape[1], "channel count (axis 1)", self.name, x)

    def params(self, attrs: Any, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.channel_count(inputs[0]),)}

    def init_param(
        self,
        attrs: ChannelScaleAttrs,
        role: str,
        inputs: Sequence[TensorType],
        rng: np.random.Generator,
    ) -> np.ndarray[Any, Any]:
        return np.full(self.params(attrs, inputs)[role], attrs.value, dtype=np.float32)

    def torch_module(self, attrs: ChannelScaleAttrs, inputs: Sequence[TensorType]) -> str:
        x = inputs[0]
        return f"ChannelScale({x.shape[1]}, rank={x.rank}, value={attrs.value!r})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        rank = ctx.input_types[0].rank
        view = ctx.add_initializer("view", np.array([-1] + [1] * (rank - 2), dtype=np.int64))
        (scale,) = ctx.add_node("Reshape", [ctx.param("weight"), view])
        ctx.add_node("Mul", [ctx.inputs[0], scale], ctx.outputs)


class SwiGLU(OpDef):
    name = "swiglu"
    family = "user"
    doc = "x * silu(gate): a gated unit with a swish gate."
    inputs = ("x", "gate")
    examples = ("in x: float32[N, 6]\nin g: float32[N, 6]\nout y = swiglu(x, g)",)

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, gate = inputs
        if not x.same_as(gate):
            raise ShapeError(f"swiglu needs x and gate of one type, got {x} and {gate}")
        return (x,)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{args[0]} * F.silu({args[1]})"

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        (x, gate), (y,) = ctx.inputs, ctx.outputs
        (sig,) = ctx.add_node("Sigmoid", [gate])
        (swish,) = ctx.add_node("Mul", [gate, sig])
        ctx.add_node("Mul", [x, swish], [y])


@pytest.fixture
def user_ops() -> Iterator[None]:
    with registry.scoped():
        register(ChannelScale)
        register(SwiGLU)
        yield


NET = """
network Gated(width: int = 4) {
    in x: float32[N, width, 8, 8]
    h = x -> conv2d(width, 3, padding=1) -> channel_scale(0.5)
    out y = swiglu(h, x)
}
"""


def test_a_users_op_compiles_to_torch_and_onnx_like_a_builtin(user_ops: None) -> None:
    prog = dslnet.loads(NET, filename="gated.net")
    graph = prog.ir("Gated")
    assert [n.op for n in graph.nodes] == ["conv2d", "channel_scale", "swiglu"]
    assert graph.parameters["channel_scale1.weight"].shape == (4,)
    module = prog.torch("Gated").eval()
    assert torch.equal(module.state_dict()["channel_scale1.weight"], torch.full((4,), 0.5))

    feeds = random_inputs(graph, {"N": 2})
    weights = {k: v.numpy() for k, v in module.state_dict().items()}
    ours = torch_outputs(graph, weights, feeds)
    theirs = run_onnx(prog.onnx("Gated", weights=module.state_dict()), feeds)
    assert_close([theirs["y"]], ours)
    x, (y,) = feeds["x"], ours
    assert y.shape == x.shape and not np.allclose(y, 0)


def test_check_op_passes_for_users_ops(user_ops: None) -> None:
    check_op("channel_scale")
    check_op(SwiGLU, sizes=[{"N": 1}, {"N": 5}])
    check_example("channel_scale", "in x: float32[N, 2]\nout y = channel_scale(x, 2.0)")


def test_generated_source_reads_like_hand_written_code_and_runs(
    user_ops: None, tmp_path: Path
) -> None:
    source = dslnet.loads(NET, filename="gated.net").torch_source("Gated", width=3)
    assert source.count("class ChannelScale(nn.Module):") == 1
    assert "self.channel_scale1 = ChannelScale(3, rank=4, value=0.5)" in source
    assert "y = h * F.silu(x)  # [N, 3, 8, 8]" in source
    path = tmp_path / "gated.py"
    path.write_text(source, encoding="utf-8")
    namespace: dict[str, Any] = {}
    exec(compile(source, str(path), "exec"), namespace)  # the file alone: imports torch only
    out = namespace["Gated"]()(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 3, 8, 8)


def test_users_ops_take_init_schemes_and_give_located_errors(user_ops: None) -> None:
    prog = dslnet.loads(
        'network Z() {\n    in x: float32[N, 3]\n    out y = x -> channel_scale(init="zeros")\n}\n',
        filename="z.net",
    )
    assert not prog.torch("Z").state_dict()["channel_scale1.weight"].any()
    bad = "network B() {\n    in x: int64[N, 3]\n    out y = channel_scale(x)\n}\n"
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.loads(bad, filename="b.net").ir("B")
    assert err.value.render().startswith(
        "b.net:3:13: error: channel_scale needs a floating-point input [N, C, ...], got int64[N, 3]"
    )


REDUCIBLE = """
network Reducible() {
    in x: float32[N, 4, 6, 6]
    out y = x -> conv2d(16, 3, padding=1) -> relu -> conv2d(8, 3, padding=1) -> channel_scale
}
"""


@pytest.mark.parametrize(
    "options",
    [
        {"fold": True, "prune": 0.5},
        {"sparsity": 0.5},
        {"lowrank_rank": 0.5},
        {"quantize": "int8-dynamic"},
    ],
    ids=lambda options: "-".join(options),
)
def test_reduction_passes_run_over_a_users_op(user_ops: None, options: dict[str, Any]) -> None:
    small = dslnet.loads(REDUCIBLE, filename="r.net").optimize("Reducible", **options)
    # The op says nothing of its channels (no channels()): its own are pinned, the
    # layers before it are reduced around it.
    assert small.graph.parameters["channel_scale1.weight"].shape == (8,)
    if "prune" in options:
        assert small.graph.parameters["conv2d1.weight"].shape == (8, 4, 3, 3)
    feeds = random_inputs(small.graph, {"N": 2})
    ours = torch_outputs(small.graph, small.weights, feeds)
    assert ours[0].shape == (2, 8, 6, 6)
    theirs = run_onnx(small.onnx(), feeds)["y"]
    if "quantize" in options:
        assert theirs.shape == ours[0].shape and np.isfinite(theirs).all()
    else:
        assert_close([theirs], ours)


# --- check_op finds what is wrong ----------------------------------------------------------


class WrongShapeRule(SwiGLU):
    name = "wrong_shape_rule"
    examples = ("in x: float32[N, 6]\nin g: float32[N, 6]\nout y = wrong_shape_rule(x, g)",)

    def infer(self, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        return (inputs[0].with_shape((inputs[0].shape[0], 7)),)


class WrongOnnx(SwiGLU):
    name = "wrong_onnx"
    examples = ("in x: float32[N, 6]\nin g: float32[N, 6]\nout y = wrong_onnx(x, g)",)

    def onnx(self, attrs: Any, ctx: OnnxNodeContext) -> None:
        ctx.add_node("Add", ctx.inputs, ctx.outputs)


class WrongParams(ChannelScale):
    name = "wrong_params"
    examples = ("in x: float32[N, 3]\nout y = wrong_params(x)",)

    def params(self, attrs: Any, inputs: Sequence[TensorType]) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.channel_count(inputs[0]) + 1,)}


class NoExamples(SwiGLU):
    name = "no_examples"
    examples = ()


class WrongTorch(SwiGLU):
    name = "wrong_torch"
    examples = ("in x: float32[N, 6]\nin g: float32[N, 6]\nout y = wrong_torch(x, g)",)

    def torch_expr(self, attrs: Any, args: Sequence[str], inputs: Sequence[TensorType]) -> str:
        return f"{args[0]} * F.no_such_function({args[1]})"


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (
            WrongShapeRule,
            r"op 'wrong_shape_rule', example 0 \(in x: float32\[N, 6\]; .*\) at \{'N': 1, .*\}: "
            r"output 'y' from torch is float32\[1, 6\], the shape rule says float32\[N, 7\] = "
            r"float32\[1, 7\]",
        ),
        (
            WrongOnnx,
            r"output 'y' differs between torch and ONNX Runtime by [0-9.e+-]+ at index \[\d+, "
            r"\d+\] \(torch .*, ONNX Runtime .*\); allowed 0.0001 x",
        ),
        (
            WrongParams,
            r"the torch module's parameters and buffers differ from what the op's "
            r"params\(\)/buffers\(\) declare: wrong_params1.weight: torch \(3,\), declared \(4,\)",
        ),
        (NoExamples, r"op 'no_examples': it has no examples"),
        (
            WrongTorch,
            r"running the torch module failed: AttributeError: .*no_such_function",
        ),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_check_op_says_what_is_wrong(cls: type[OpDef], message: str) -> None:
    with registry.scoped():
        register(cls)
        with pytest.raises(AssertionError, match=message):
            check_op(cls.name)


def test_check_op_needs_a_registered_op_and_sizes_for_every_dim(user_ops: None) -> None:
    with pytest.raises(AssertionError, match="'nope' is not a registered op"):
        check_op("nope")
    with pytest.raises(AssertionError, match=r"give no value for N; pass sizes="):
        check_op("swiglu", sizes=[{"T": 3}])


# --- registration errors ----------------------------------------------------------------


def _op(name: str = "fine", **facets: Any) -> type[OpDef]:
    """A complete functional op class, with some facets replaced (None removes one)."""
    body: dict[str, Any] = {
        "name": name,
        "family": "user",
        "infer": lambda self, attrs, inputs: (inputs[0],),
        "torch_expr": lambda self, attrs, args, inputs: args[0],
        "onnx": lambda self, attrs, ctx: ctx.add_node("Identity", ctx.inputs, ctx.outputs),
    }
    body.update(facets)
    return type("UserOp", (OpDef,), {k: v for k, v in body.items() if v is not None})


class NotOpAttrs(BaseModel):
    factor: float = 1.0


class TwoAttrs(OpAttrs):
    scale: float = Field(1.0, description="multiplies")
    shift: float = Field(0.0, description="then added")


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (
            _op("relu"),
            "op 'relu' (tests.test_user_ops.UserOp) cannot be registered:\n"
            "  - the name 'relu' is already registered by dslnet (built-in, "
            "dslnet.ops.activation.ReLU)",
        ),
        (_op(torch_expr=None), "it has no torch lowering: define torch_expr"),
        (_op(onnx=None), "it has no ONNX lowering: define onnx(self, attrs, ctx)"),
        (_op(infer=None), "it has no shape rule"),
        (_op(Attrs=NotOpAttrs), "its Attrs must be a subclass of dslnet.ops.OpAttrs"),
        (_op(family=None), "it has no family"),
        (_op(name=None), "it has no name"),
        (_op("my-op"), "its name 'my-op' is not an identifier"),
        (_op("repeat"), "its name 'repeat' is a keyword or builtin of the spec language"),
        (_op("range"), "its name 'range' is a keyword or builtin of the spec language"),
        (_op(examples="in x: float32[N]\nout y = fine(x)"), "its examples must be a tuple"),
        (
            _op(params=lambda self, attrs, inputs: {"weight": (3,)}),
            "it declares parameters or buffers but no init_param",
        ),
        (
            _op(channels=lambda self, x: 3),
            "its channels(self, x) overrides OpDef.channels, which dslnet calls as "
            "channels(self, attrs, inputs): take those arguments, or rename the method",
        ),
        (
            _op(Attrs=TwoAttrs, positional=("shift",)),
            "its positional ('shift',) must name the leading attributes of its Attrs in "
            "order (here: scale); the others are keyword-only",
        ),
        (
            _op(Attrs=TwoAttrs, positional=("shift", "scale")),
            "its positional ('shift', 'scale') must name the leading attributes",
        ),
        (
            _op(Attrs=TwoAttrs, positional=("scale", "shift", "bias")),
            "(here: scale, shift)",
        ),
        (_op(positional="scale"), "its positional must be a tuple of str, got 'scale'"),
    ],
    ids=lambda v: "" if isinstance(v, type) else v.split(":")[0][:40],
)
def test_registering_an_incomplete_op_says_what_to_fix(cls: type[OpDef], message: str) -> None:
    cls.__module__ = "tests.test_user_ops"
    before = registry.all_ops()
    with registry.scoped():
        with pytest.raises(OpDefinitionError) as err:
            register(cls)
        assert message in str(err.value)
        assert registry.all_ops() == before  # nothing half-added


def test_every_problem_is_listed_at_once() -> None:
    with registry.scoped(), pytest.raises(OpDefinitionError) as err:
        register(_op(torch_expr=None, onnx=None, family=None))
    assert str(err.value).count("\n  - ") == 3


def test_the_spec_languages_words_are_refused_before_the_front_end_loads() -> None:
    """The front end declares its keywords and builtins at `import dslnet`, so an op
    registered straight from dslnet.ops meets the check with no parser loaded."""
    code = """
import sys
from dslnet.ops import OpDef, OpDefinitionError, register

class Repeat(OpDef):
    name, family = "repeat", "user"
    def infer(self, attrs, inputs): return (inputs[0],)
    def torch_expr(self, attrs, args, inputs): return args[0]
    def onnx(self, attrs, ctx): pass

try:
    register(Repeat)
except OpDefinitionError as err:
    print(err)
print(sorted(m for m in sys.modules if m.startswith("dslnet.frontend.")))
"""
    env = {**os.environ, "DSLNET_NO_PLUGINS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "its name 'repeat' is a keyword or builtin of the spec language" in run.stdout
    assert run.stdout.splitlines()[-1] == "['dslnet.frontend.vocabulary']"


def test_a_name_clash_between_users_ops_names_the_first(user_ops: None) -> None:
    other = _op("channel_scale")
    with pytest.raises(OpDefinitionError, match=r"already registered by .*\.ChannelScale$"):
        register(other)
    with pytest.raises(OpDefinitionError, match=r"takes a subclass of dslnet\.ops\.OpDef"):
        register(42)  # type: ignore[type-var]


def test_registering_again_keeps_or_replaces_a_class_of_the_same_name() -> None:
    with registry.scoped():
        first = register(_op("twice"))
        assert register(first) is first  # the same class again: nothing happens
        second = register(_op("twice"))  # same module and name: a re-run cell, a reload
        assert type(registry.get("twice")) is second


def test_scoped_and_unregister_remove_users_ops_only() -> None:
    with registry.scoped():
        register(SwiGLU)
        assert registry.get("swiglu") is not None
        unregister("swiglu")
        assert registry.get("swiglu") is None
        register(SwiGLU)
    assert registry.get("swiglu") is None
    with pytest.raises(ValueError, match="'relu' is built in"):
        unregister("relu")
    with pytest.raises(ValueError, match="no op 'nope'"):
        unregister("nope")


def test_users_ops_are_listed_and_marked_but_kept_out_of_the_reference(
    user_ops: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "channel_scale" not in opdocs.reference()
    listing = next(line for line in opdocs.op_list().splitlines() if "channel_scale" in line)
    assert listing.endswith("[user op: tests.test_user_ops]")
    assert main(["ops", "channel_scale"]) == 0
    text = capsys.readouterr().out
    assert "- user op: tests.test_user_ops.ChannelScale\n" in text
    assert "# param channel_scale1.weight: [4]" in text
    assert opdocs.op_data(registry.get("relu"))["defined_by"] is None  # type: ignore[arg-type]


# --- plugins: a package's `dslnet.ops` entry point ----------------------------------------

PLUGIN = """
import numpy as np
from pydantic import Field

from dslnet.ops import OpAttrs, OpDef, register


class ShiftAttrs(OpAttrs):
    shift: float = Field(0.5, description="subtracted before the ReLU")


@register
class ShiftedReLU(OpDef):
    name = "shifted_relu"
    family = "activation"
    doc = "max(x - shift, 0)."
    Attrs = ShiftAttrs
    examples = ("in x: float32[N, 5]\\nout y = shifted_relu(x, shift=0.25)",)

    def infer(self, attrs, inputs):
        return (inputs[0],)

    def torch_expr(self, attrs, args, inputs):
        return f"torch.relu({args[0]} - {attrs.shift!r})"

    def onnx(self, attrs, ctx):
        shift = ctx.add_initializer("shift", np.array(attrs.shift, dtype=np.float32))
        (moved,) = ctx.add_node("Sub", [ctx.inputs[0], shift])
        ctx.add_node("Relu", [moved], ctx.outputs)
"""

SPEC = """network Demo() {
    in x: float32[N, 5]
    out y = x -> linear(4) -> shifted_relu(shift=0.1)
}
"""


def make_distribution(root: Path, dist: str, modules: dict[str, str], points: str) -> Path:
    """An installed distribution as a directory on sys.path: its modules and a
    `.dist-info` holding METADATA and the `dslnet.ops` entry points."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source, encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[dslnet.ops]\n{points}\n", encoding="utf-8")
    return root


def dslnet_cli(
    args: Sequence[str], path: Path, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """The `dslnet` command in a fresh process that sees the distribution at `path`."""
    return fresh_python(["-m", "dslnet.cli", *args], path, cwd, **env)


def fresh_python(
    args: Sequence[str], path: Path, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """Python in a fresh process (no op registered yet) that sees the distribution at
    `path`, with plugins on unless `env` says otherwise."""
    environ = {**os.environ, "PYTHONPATH": str(path)}
    environ.pop(NO_PLUGINS_ENV, None)  # the caller's environment must not skip plugins
    environ.update(env)
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=120,
    )


def test_a_plugin_loads_in_process_and_its_op_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NO_PLUGINS_ENV, raising=False)
    root = make_distribution(
        tmp_path, "shift-ops", {"shift_ops_inproc": PLUGIN}, "shift = shift_ops_inproc"
    )
    monkeypatch.syspath_prepend(str(root))
    with registry.scoped():
        assert load_plugins() == ["shift"]
        assert load_plugins() == []  # once
        origin = registry.origin("shifted_relu")
        assert origin is not None and str(origin) == (
            "shift_ops_inproc.ShiftedReLU (entry point 'shift' of shift-ops 1.0)"
        )
        check_op("shifted_relu")
        assert dslnet.loads(SPEC, filename="demo.net").ir("Demo").nodes[-1].op == "shifted_relu"
    assert registry.get("shifted_relu") is None


LOOKUP = """
import sys
from dslnet import ops
print("lazy_ops" in sys.modules)
print(ops.get("shifted_relu") is not None, "lazy_ops" in sys.modules)
"""


def test_plugins_load_on_the_first_lookup_and_can_be_switched_off(tmp_path: Path) -> None:
    root = make_distribution(tmp_path, "lazy-ops", {"lazy_ops": PLUGIN}, "lazy = lazy_ops")
    loaded = fresh_python(["-c", LOOKUP], root, tmp_path)
    assert loaded.stdout.split() == ["False", "True", "True"], loaded.stderr
    skipped = fresh_python(["-c", LOOKUP], root, tmp_path, DSLNET_NO_PLUGINS="1")
    assert skipped.stdout.split() == ["False", "False", "False"], skipped.stderr


def test_a_plugin_failing_halfway_leaves_none_of_its_ops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NO_PLUGINS_ENV, raising=False)
    halfway = PLUGIN + "\nraise RuntimeError('needs a GPU build')\n"
    root = make_distribution(
        tmp_path, "half-ops", {"half_ops_inproc": halfway}, "half = half_ops_inproc"
    )
    monkeypatch.syspath_prepend(str(root))
    with registry.scoped():
        with pytest.raises(PluginError) as err:
            load_plugins()
        assert str(err.value) == (
            "the dslnet.ops entry point 'half' (half_ops_inproc) of half-ops 1.0 failed to "
            "load: RuntimeError: needs a GPU build\n(fix or uninstall half-ops, or set "
            "DSLNET_NO_PLUGINS=1 to run without plugins)"
        )
        assert registry.get("shifted_relu") is None


def test_the_cli_uses_a_plugins_op(tmp_path: Path) -> None:
    root = make_distribution(
        tmp_path / "site", "shift-ops", {"shift_ops_cli": PLUGIN}, "shift = shift_ops_cli"
    )
    (tmp_path / "demo.net").write_text(SPEC, encoding="utf-8")

    shown = dslnet_cli(["ops", "shifted_relu"], root, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("## shifted_relu\n\nmax(x - shift, 0).")
    assert "- user op: shift_ops_cli.ShiftedReLU (entry point 'shift' of shift-ops 1.0)\n" in (
        shown.stdout
    )
    listed = dslnet_cli(["ops"], root, tmp_path).stdout.splitlines()
    (line,) = [line for line in listed if line.startswith("  shifted_relu ")]
    assert line.endswith("max(x - shift, 0).  [user op: shift-ops 1.0]")

    torch_file = tmp_path / "demo.py"
    made = dslnet_cli(["compile", "demo.net", "--emit", "torch", "-o", "demo.py"], root, tmp_path)
    assert made.returncode == 0, made.stderr
    assert "y = torch.relu(linear1 - 0.1)" in torch_file.read_text(encoding="utf-8")
    made = dslnet_cli(["compile", "demo.net", "--emit", "onnx", "-o", "demo.onnx"], root, tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "demo.onnx").stat().st_size > 0


def test_a_broken_plugin_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    clash = PLUGIN.replace('name = "shifted_relu"', 'name = "relu"')
    root = make_distribution(
        tmp_path / "site",
        "clash-ops",
        {"clash_ops_cli": clash, "missing_dep_cli": "import no_such_module\n"},
        "a_clash = clash_ops_cli\nb_missing = missing_dep_cli",
    )
    failed = dslnet_cli(["ops", "linear"], root, tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.startswith(
        "dslnet: error: the dslnet.ops entry point 'a_clash' (clash_ops_cli) of clash-ops "
        "1.0 failed to load: op 'relu' (clash_ops_cli.ShiftedReLU) cannot be registered:\n"
        "  - the name 'relu' is already registered by dslnet (built-in, "
        "dslnet.ops.activation.ReLU)\n"
    )
    assert "Traceback" not in failed.stderr
    skipped = dslnet_cli(["ops", "linear"], root, tmp_path, DSLNET_NO_PLUGINS="1")
    assert skipped.returncode == 0, skipped.stderr

    root = make_distribution(
        tmp_path / "site2",
        "missing-ops",
        {"missing_dep_cli": "import no_such_module\n"},
        "missing = missing_dep_cli",
    )
    (tmp_path / "demo.net").write_text(SPEC, encoding="utf-8")
    failed = dslnet_cli(["check", "demo.net"], root, tmp_path)
    assert failed.returncode == 2
    assert failed.stderr == (
        "dslnet: error: the dslnet.ops entry point 'missing' (missing_dep_cli) of missing-ops "
        "1.0 failed to load: ModuleNotFoundError: No module named 'no_such_module'\n"
        "(fix or uninstall missing-ops, or set DSLNET_NO_PLUGINS=1 to run without plugins)\n"
    )


def test_a_users_op_is_keyword_only_unless_it_declares_positional_attributes() -> None:
    spec = "network P() {\n    in x: float32[N, 3]\n    out y = x -> scaled(%s)\n}\n"
    with registry.scoped():
        register(_op("scaled", Attrs=TwoAttrs))
        assert dslnet.loads(spec % "scale=2.0, shift=1.0").ir("P")
        with pytest.raises(dslnet.CompileError) as err:
            dslnet.loads(spec % "2.0, 1.0").ir("P")
        assert (
            "scaled takes no positional arguments, got 2: scale and shift are keyword-only: "
            "write scaled(scale=2.0, shift=1.0)" in str(err.value)
        )
        assert registry.get("scaled").signature() == (  # type: ignore[union-attr]
            "*, scale: float = 1.0, shift: float = 0.0"
        )
    with registry.scoped():
        register(_op("scaled", Attrs=TwoAttrs, positional=("scale",)))
        assert dslnet.loads(spec % "2.0, shift=1.0").ir("P")
        with pytest.raises(dslnet.CompileError, match="shift is keyword-only"):
            dslnet.loads(spec % "2.0, 1.0").ir("P")


def test_every_builtin_op_passes_the_checks_a_users_op_gets() -> None:
    """Registration skips these checks for the built-ins (they would cost every start
    more than loading the ops): here they run over every one."""
    from dslnet.ops.userops import definition_problems

    problems = {
        name: found
        for name, op in registry.builtin_ops().items()
        if (found := definition_problems(type(op)))
    }
    assert problems == {}
