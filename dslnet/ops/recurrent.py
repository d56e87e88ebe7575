"""Recurrent layers: rnn, lstm and gru, stacked and bidirectional.

Parameters carry torch's names and layout (`weight_ih_l0`, `bias_hh_l1_reverse`,
gates stacked i,f,g,o for LSTM and r,z,n for GRU), so weights move to and from
nn.LSTM/nn.GRU/nn.RNN unchanged. The ONNX lowering emits one ONNX LSTM/GRU/RNN node
per layer and converts the gate order and bias layout once, at emit time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from dslnet.core.lazy import numpy as np
from dslnet.core.symbolic import Dim, dims_equal, mul
from dslnet.core.types import TensorType, shape_str
from dslnet.ops.channels import Channels, Placed
from dslnet.ops.lowering import OnnxNodeContext
from dslnet.ops.positional import InferredSize
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError, need_static, register

# Each layer is four parameter tensors per direction, listed one by one: a stack far
# deeper than any real one (a typo, or a hostile spec) would take seconds and memory to
# list before any limit on parameters could be checked.
MAX_LAYERS = 1000


class RecurrentAttrs(OpAttrs):
    hidden_size: int = Field(gt=0, description="features of the hidden state")
    num_layers: int = Field(1, gt=0, le=MAX_LAYERS, description="recurrent layers stacked")
    bidirectional: bool = Field(False, description="also run each layer backwards in time")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="dropout on each layer's output but the last (training)"
    )
    bias: bool = Field(True, description="learn the input and hidden biases")
    batch_first: bool = Field(True, description="input [N, T, F]; false: [T, N, F]")


class RNNAttrs(RecurrentAttrs):
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="the cell's activation")


def _suffix(layer: int, reverse: bool) -> str:
    return f"_l{layer}" + ("_reverse" if reverse else "")


class _Recurrent(OpDef):
    """What the three cells share; subclasses say how many gates and their order."""

    family = "recurrent"
    positional = ("hidden_size",)
    inferred = InferredSize("input size", axis=-1)
    torch_class: ClassVar[str]
    gates: ClassVar[int]
    # For each ONNX gate slot, the torch gate whose rows go there.
    onnx_gate_order: ClassVar[tuple[int, ...]]
    onnx_op: ClassVar[str]
    aliases = {"hidden": "hidden_size", "layers": "num_layers"}

    def is_weight(self, role: str) -> bool:
        return role.startswith("weight_")  # weight_ih_l0, weight_hh_l1_reverse: not biases

    def directions(self, attrs: RecurrentAttrs) -> int:
        return 2 if attrs.bidirectional else 1

    def state_shape(self, attrs: RecurrentAttrs, x: TensorType) -> tuple[Dim, ...]:
        batch = x.shape[0] if attrs.batch_first else x.shape[1]
        return (attrs.num_layers * self.directions(attrs), batch, attrs.hidden_size)

    def features(self, x: TensorType) -> int:
        return need_static(x.shape[2], "feature size (last axis)", self.name, x)

    def infer(self, attrs: RecurrentAttrs, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
        x, *states = inputs
        layout = "[N, T, F]" if attrs.batch_first else "[T, N, F] (batch_first=false)"
        if x.rank != 3 or not x.dtype.is_float:
            raise ShapeError(f"{self.name} needs a float input {layout}, got {x}")
        self.features(x)
        if states and len(states) != len(self.optional_inputs):
            raise ShapeError(
                f"{self.name} takes its initial states {' and '.join(self.optional_inputs)} "
                f"together or not at all, got {len(states)} of them"
            )
        state = self.state_shape(attrs, x)
        for name, given in zip(self.optional_inputs, states):
            if (
                given.dtype != x.dtype
                or not all(dims_equal(a, b) for a, b in zip(given.shape, state))
                or given.rank != 3
            ):
                raise ShapeError(
                    f"{self.name}: initial state {name} must be {x.dtype}{shape_str(state)} "
                    f"([layers*directions, N, hidden]), got {given}"
                )
        width = self.directions(attrs) * attrs.hidden_size
        y = x.with_shape((x.shape[0], x.shape[1], width))
        return (y, *[x.with_shape(state)] * (len(self.outputs) - 1))

    def layer_inputs(self, attrs: RecurrentAttrs, x: TensorType) -> list[int]:
        first = self.features(x)
        width = self.directions(attrs) * attrs.hidden_size
        return [first] + [width] * (attrs.num_layers - 1)

    def channels(self, attrs: RecurrentAttrs, inputs: Sequence[TensorType]) -> Channels | None:
        # Hidden units are pruned together in every layer and direction: each weight's
        # gate blocks lose the same rows, the recurrent weights the same columns too.
        directions = self.directions(attrs)
        reading: dict[str, int] = {}
        placed: list[Placed] = []
        for layer in range(attrs.num_layers):
            for reverse in (False, True)[:directions]:
                s = _suffix(layer, reverse)
                if layer == 0:
                    reading[f"weight_ih{s}"] = 1
                else:  # reads the previous layer's output, one copy per direction
                    placed.append(Placed(f"weight_ih{s}", 1, directions))
                placed += [Placed(f"weight_ih{s}", 0, self.gates)]
                placed += [Placed(f"weight_hh{s}", 0, self.gates), Placed(f"weight_hh{s}", 1)]
                if attrs.bias:
                    placed += [Placed(f"bias_ih{s}", 0, self.gates, scored=False)]
                    placed += [Placed(f"bias_hh{s}", 0, self.gates, scored=False)]
        return Channels(
            "make",
            axis=-1,
            out_attr="hidden_size",
            in_params=reading,
            unit_params=tuple(placed),
            out_copies=(directions,) + (1,) * (len(self.outputs) - 1),
            state_inputs=tuple(range(1, len(inputs))),
        )

    def params(
        self, attrs: RecurrentAttrs, inputs: Sequence[TensorType]
    ) -> dict[str, tuple[int, ...]]:
        rows, hidden = self.gates * attrs.hidden_size, attrs.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer, features in enumerate(self.layer_inputs(attrs, inputs[0])):
            for reverse in (False, True)[: self.directions(attrs)]:
                s = _suffix(layer, reverse)
                shapes[f"weight_ih{s}"] = (rows, features)
                shapes[f"weight_hh{s}"] = (rows, hidden)
                if attrs.bias:
                    shapes[f"bias_ih{s}"] = (rows,)
                    shapes[f"bias_hh{s}"] = (rows,)
        return shapes

    def init_param(
        self,
        attrs: RecurrentAttrs,
        role: str,
        inputs: Sequence[TensorType],
        rng: np.random.Generator,
    ) -> np.ndarray[Any, Any]:
        # torch: every weight and bias U(-1/sqrt(hidden), 1/sqrt(hidden)).
        bound = 1.0 / np.sqrt(attrs.hidden_size)
        shape = self.params(attrs, inputs)[role]
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    def flops(
        self, attrs: RecurrentAttrs, inputs: Sequence[TensorType], outputs: Sequence[TensorType]
    ) -> Dim:
        x = inputs[0]
        hidden = attrs.hidden_size
        per_step = sum(
            self.directions(attrs) * self.gates * hidden * (features + hidden)
            for features in self.layer_inputs(attrs, x)
        )
        return mul(mul(x.shape[0], x.shape[1]), per_step)

    # --- torch ----------------------------------------------------------------------

    def differs_in_training(self, attrs: RecurrentAttrs) -> bool:
        return attrs.dropout > 0.0  # between stacked layers, while training

    def torch_module(self, attrs: RecurrentAttrs, inputs: Sequence[TensorType]) -> str:
        options: list[tuple[str, object, object]] = [
            ("num_layers", attrs.num_layers, 1),
            ("bias", attrs.bias, True),
            ("batch_first", attrs.batch_first, False),
            ("dropout", attrs.dropout, 0.0),
            ("bidirectional", attrs.bidirectional, False),
        ]
        if isinstance(attrs, RNNAttrs):
            options.insert(1, ("nonlinearity", attrs.nonlinearity, "tanh"))
        text = "".join(f", {k}={v!r}" for k, v, default in options if v != default)
        features = self.features(inputs[0])
        return f"nn.{self.torch_class}({features}, {attrs.hidden_size}{text})"

    def torch_call(
        self,
        attrs: RecurrentAttrs,
        module: str,
        args: Sequence[str],
        inputs: Sequence[TensorType],
    ) -> str:
        x, *states = args
        if not states:
            return f"{module}({x})"
        state = states[0] if len(states) == 1 else f"({', '.join(states)})"
        return f"{module}({x}, {state})"

    # --- ONNX -----------------------------------------------------------------------

    def onnx_gate_rows(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Rows of a torch weight or bias, gate blocks put in ONNX's order."""
        blocks = np.split(array, self.gates, axis=0)
        return np.concatenate([blocks[i] for i in self.onnx_gate_order], axis=0)

    def onnx_attrs(self, attrs: RecurrentAttrs) -> dict[str, Any]:
        return {}

    def onnx(self, attrs: RecurrentAttrs, ctx: OnnxNodeContext) -> None:
        x, *states = ctx.inputs
        dirs = self.directions(attrs)
        hidden = attrs.hidden_size

        def ints(hint: str, *values: int) -> str:
            return ctx.add_initializer(hint, np.array(values, dtype=np.int64))

        # ONNX runs [T, N, F]; one Transpose in and one out for batch_first.
        seq = ctx.add_node("Transpose", [x], perm=(1, 0, 2))[0] if attrs.batch_first else x
        finals: list[list[str]] = [[] for _ in self.outputs[1:]]
        for layer in range(attrs.num_layers):
            names = [f"_l{layer}", f"_l{layer}_reverse"][:dirs]
            weights = [
                self.stacked(ctx, [f"weight_ih{n}" for n in names]),
                self.stacked(ctx, [f"weight_hh{n}" for n in names]),
            ]
            args = [seq, *(ctx.add_initializer(f"{r}_l{layer}", w) for r, w in zip("WR", weights))]
            if attrs.bias:
                bias = np.stack(
                    [
                        np.concatenate(
                            [
                                self.onnx_gate_rows(ctx.param_array(f"bias_ih{n}")),
                                self.onnx_gate_rows(ctx.param_array(f"bias_hh{n}")),
                            ]
                        )
                        for n in names
                    ]
                )
                args.append(ctx.add_initializer(f"B_l{layer}", bias))
            if states:
                args += [""] * (5 - len(args))  # no B without bias; no sequence_lens
                begin, end = (
                    ints(f"state_begin_l{layer}", layer * dirs),
                    ints(f"state_end_l{layer}", (layer + 1) * dirs),
                )
                args += [ctx.add_node("Slice", [s, begin, end])[0] for s in states]
            y, *final = ctx.add_node(
                self.onnx_op,
                args,
                len(self.outputs),
                hidden_size=hidden,
                direction="bidirectional" if dirs == 2 else "forward",
                **self.onnx_attrs(attrs),
            )
            for collected, value in zip(finals, final):
                collected.append(value)
            # Y is [T, dirs, N, H]; the next layer and the result want [T, N, dirs*H].
            (y_t,) = ctx.add_node("Transpose", [y], perm=(0, 2, 1, 3))
            (seq,) = ctx.add_node("Reshape", [y_t, ints("seq_by_features", 0, 0, dirs * hidden)])
        y_out, *state_outs = ctx.outputs
        if attrs.batch_first:
            ctx.add_node("Transpose", [seq], [y_out], perm=(1, 0, 2))
        else:
            ctx.add_node("Identity", [seq], [y_out])
        for collected, out in zip(finals, state_outs):
            if len(collected) == 1:
                ctx.add_node("Identity", collected, [out])
            else:
                ctx.add_node("Concat", collected, [out], axis=0)

    def stacked(self, ctx: OnnxNodeContext, roles: Sequence[str]) -> np.ndarray[Any, Any]:
        """[dirs, gates*H, K]: the directions' weights in ONNX gate order."""
        return np.stack([self.onnx_gate_rows(ctx.param_array(role)) for role in roles])


def _examples(op: str, states: str) -> tuple[str, ...]:
    outs = "y, h" if states == "h" else "y, h, c"
    state_inputs = "".join(f"in {s}0: float32[4, N, 5]\n" for s in states.split(","))
    given = ", ".join(f"{s}0" for s in states.split(","))
    outputs = "".join(f"out {o} = {o}\n" for o in outs.split(", ")).rstrip()
    return (
        f"in x: float32[N, T, 3]\n{outs} = {op}(x, 6)\n{outputs}",
        f"in x: float32[N, T, 4]\n{outs} = {op}(x, 5, num_layers=2, bidirectional=true)\n{outputs}",
        f"in x: float32[T, N, 3]\nout y = {op}(x, 4, batch_first=false, bias=false).y",
        f"in x: float32[N, T, 3]\n{state_inputs}"
        f"{outs} = {op}(x, {given}, 5, num_layers=2, bidirectional=true)\n{outputs}",
    )


@register
class LSTM(_Recurrent):
    name = "lstm"
    doc = (
        "Long short-term memory over x [N, T, F]: outputs the sequence y [N, T, dirs*H] and "
        "the final states h, c [layers*dirs, N, H]; optional initial states h0, c0."
    )
    Attrs = RecurrentAttrs
    optional_inputs = ("h0", "c0")
    outputs = ("y", "h", "c")
    torch_class = "LSTM"
    gates = 4
    onnx_gate_order = (0, 3, 1, 2)  # torch i,f,g,o -> ONNX i,o,f,c
    onnx_op = "LSTM"
    examples = _examples("lstm", "h,c")

    def torch_targets(self, attrs: RecurrentAttrs, targets: Sequence[str]) -> str:
        y, h, c = targets
        return f"{y}, _" if h == c == "_" else f"{y}, ({h}, {c})"


@register
class GRU(_Recurrent):
    name = "gru"
    doc = (
        "Gated recurrent unit over x [N, T, F]: outputs the sequence y [N, T, dirs*H] and the "
        "final state h [layers*dirs, N, H]; optional initial state h0."
    )
    Attrs = RecurrentAttrs
    optional_inputs = ("h0",)
    outputs = ("y", "h")
    torch_class = "GRU"
    gates = 3
    onnx_gate_order = (1, 0, 2)  # torch r,z,n -> ONNX z,r,h
    onnx_op = "GRU"
    examples = _examples("gru", "h")

    def onnx_attrs(self, attrs: RecurrentAttrs) -> dict[str, Any]:
        return {"linear_before_reset": 1}  # torch applies the reset gate after the matmul


@register
class RNN(_Recurrent):
    name = "rnn"
    doc = (
        "Elman recurrent layer (tanh or relu) over x [N, T, F]: outputs the sequence "
        "y [N, T, dirs*H] and the final state h [layers*dirs, N, H]; optional h0."
    )
    Attrs = RNNAttrs
    optional_inputs = ("h0",)
    outputs = ("y", "h")
    torch_class = "RNN"
    gates = 1
    onnx_gate_order = (0,)
    onnx_op = "RNN"
    examples = (
        *_examples("rnn", "h"),
        'in x: float32[N, T, 3]\ny, h = rnn(x, 4, nonlinearity="relu", bidirectional=true)\n'
        "out y = y\nout h = h",
    )

    def onnx_attrs(self, attrs: RecurrentAttrs) -> dict[str, Any]:
        assert isinstance(attrs, RNNAttrs)
        activation = "Tanh" if attrs.nonlinearity == "tanh" else "Relu"
        return {"activations": [activation] * self.directions(attrs)}
