"""Builds a Graph node by node, running each op's shape rule as it goes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.core.types import DType, TensorType, shape_str
from dslnet.ir.graph import CallFrame, CallInfo, Graph, ModuleInfo, Node, Parameter, Value
from dslnet.ops.registry import OpAttrs, OpDef, ShapeError


class GraphBuilder:
    def __init__(self, name: str, args: dict[str, Any], span: Span | None = None) -> None:
        # Unvalidated, with the fields as validation leaves them (a plain str, a dict of
        # its own): validating costs building Graph's schema, at every start.
        self.graph = Graph.model_construct(name=str(name), args=dict(args), span=span)
        self._taken: set[str] = set()
        self._node_names: set[str] = set()
        self._suffix: dict[str, int] = {}
        self._calls = 0  # next suffix to try per hint: keeps naming linear

    def fresh_value(self, hint: str) -> str:
        """A unique value name: the hint, or the hint with `_2`, `_3`... appended."""
        return self._unique(hint, "_", self._taken)

    def _fresh_node(self, hint: str) -> str:
        return self._unique(hint, "@", self._node_names)

    def _unique(self, hint: str, sep: str, taken: set[str]) -> str:
        name, k = hint, self._suffix.get(sep + hint, 1)
        if k > 1:
            name = f"{hint}{sep}{k}"
        while name in taken:
            k += 1
            name = f"{hint}{sep}{k}"
        self._suffix[sep + hint] = k
        taken.add(name)
        return name

    def add_input(self, hint: str, ttype: TensorType) -> str:
        name = self.fresh_value(hint)
        self.graph.values[name] = Value(name=name, type=ttype)
        self.graph.inputs.append(name)
        return name

    def add_output(self, out_name: str, value: str) -> None:
        self.graph.outputs.append((out_name, value))

    def new_call_id(self) -> int:
        self._calls += 1
        return self._calls

    def add_call(self, call: CallInfo) -> None:
        self.graph.calls[call.id] = call

    def add_module(self, path: str, block: str, args: dict[str, Any], span: Span) -> None:
        if path not in self.graph.modules:
            self.graph.modules[path] = ModuleInfo(path=path, block=block, args=args, span=span)

    def add_node(
        self,
        op: OpDef,
        attrs: OpAttrs,
        inputs: Sequence[str],
        *,
        module: str,
        out_hints: Sequence[str],
        span: Span,
        chain: tuple[CallFrame, ...],
        init: str | None = None,
        marks: Mapping[str, Any] | None = None,
    ) -> tuple[str, ...]:
        """Append a node; returns its output value names. Raises ShapeError."""
        in_types = [self.graph.values[v].type for v in inputs]
        out_types = op.infer(attrs, in_types)
        shapes = op.params(attrs, in_types)
        buffers = op.buffers(attrs, in_types)
        _check_weights_dtype(
            op, [*shapes, *(r for r, (_, d) in buffers.items() if d.is_float)], in_types
        )
        for role, shape in shapes.items():
            self._add_parameter(module, role, shape)
        for role, (shape, dtype) in buffers.items():
            self._add_parameter(module, role, shape, dtype, buffer=True)
        outputs = tuple(self.fresh_value(h) for h in out_hints[: len(out_types)])
        for name, ttype in zip(outputs, out_types):
            self.graph.values[name] = Value(name=name, type=ttype)
        self.graph.nodes.append(
            Node(
                name=self._fresh_node(module),
                op=op.name,
                attrs=attrs.model_dump(),
                inputs=tuple(inputs),
                outputs=outputs,
                module=module,
                span=span,
                chain=chain,
                init=init,
                marks=dict(marks or {}),
            )
        )
        return outputs

    def _add_parameter(
        self,
        module: str,
        role: str,
        shape: tuple[int, ...],
        dtype: DType = DType.float32,
        buffer: bool = False,
    ) -> None:
        name = f"{module}.{role}"
        seen = self.graph.parameters.get(name)
        if seen is None:
            self.graph.parameters[name] = Parameter(
                name=name, module=module, role=role, shape=shape, dtype=dtype, buffer=buffer
            )
        elif seen.shape != shape:
            raise ShapeError(
                f"shared layer '{module}' is used with incompatible shapes: its {role} is "
                f"{shape_str(seen.shape)} from the first use, this use needs {shape_str(shape)}"
            )


def _check_weights_dtype(op: OpDef, roles: Sequence[str], in_types: Sequence[TensorType]) -> None:
    """Weights are float32, and neither PyTorch nor ONNX Runtime mixes them with another
    float dtype in one op: such an input is refused here rather than at run time."""
    other = next((t for t in in_types if t.dtype.is_float and t.dtype != DType.float32), None)
    if roles and other is not None:
        raise ShapeError(
            f"{op.name} holds float32 weights ({', '.join(roles)}), so its floating-point "
            f"inputs must be float32 too, got {other}"
        )
