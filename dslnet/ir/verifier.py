"""Checks that a graph is well formed; passes run it after every change in tests."""

from __future__ import annotations

from dslnet.ir.graph import Graph
from dslnet.ops import registry


class VerifyError(Exception):
    pass


def verify(graph: Graph) -> None:
    """Raise VerifyError on the first broken invariant.

    Every value is defined once before it is used, every op is registered and
    its rule, re-run, gives the recorded types and parameter shapes.
    """
    defined: set[str] = set()
    for name in graph.inputs:
        if name not in graph.values:
            raise VerifyError(f"input {name} has no type")
        defined.add(name)
    for node in graph.nodes:
        op = registry.get(node.op)
        if op is None:
            raise VerifyError(f"node {node.name}: unknown op '{node.op}'")
        for value in node.inputs:
            if value not in defined:
                raise VerifyError(f"node {node.name} uses {value} before it is defined")
        attrs = op.Attrs.model_validate(node.attrs, strict=False)
        in_types = [graph.values[v].type for v in node.inputs]
        out_types = op.infer(attrs, in_types)
        if len(out_types) != len(node.outputs):
            raise VerifyError(
                f"node {node.name}: {len(node.outputs)} outputs, op gives {len(out_types)}"
            )
        for value, ttype in zip(node.outputs, out_types):
            if value in defined:
                raise VerifyError(f"value {value} is defined twice")
            recorded = graph.values.get(value)
            if recorded is None or not recorded.type.same_as(ttype):
                raise VerifyError(
                    f"node {node.name}: {value} recorded as "
                    f"{recorded.type if recorded else None}, rule gives {ttype}"
                )
            defined.add(value)
        for role, shape in op.params(attrs, in_types).items():
            param = graph.parameters.get(node.param_name(role))
            if param is None or param.shape != shape:
                raise VerifyError(
                    f"node {node.name}: parameter {node.param_name(role)} should be {list(shape)}"
                )
    for out_name, value in graph.outputs:
        if value not in defined:
            raise VerifyError(f"output {out_name} = {value} is not defined")
