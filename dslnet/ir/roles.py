"""A node's parameters by the roles its op declares (dslnet.ops.roles).

Passes and the printer ask here which parameter of a node is its weight or its bias;
they never assume the names `weight` and `bias`.
"""

from __future__ import annotations

from dslnet.ir.graph import Graph, Node
from dslnet.ops import registry
from dslnet.ops.roles import NO_ROLES, ParamRoles


def roles_of(node: Node) -> ParamRoles:
    """The parameter roles of `node`'s op (none for an op not registered)."""
    op = registry.get(node.op)
    return op.param_roles if op is not None else NO_ROLES


def weight_of(node: Node) -> str | None:
    """The name of `node`'s weight (`enc.fc1.weight`), or None when its op declares none.
    The op's attributes decide whether the parameter exists (a norm without affine)."""
    role = roles_of(node).weight
    return node.param_name(role) if role is not None else None


def bias_of(node: Node) -> str | None:
    """The name of `node`'s bias, or None when its op declares none."""
    role = roles_of(node).bias
    return node.param_name(role) if role is not None else None


def weight_parameters(graph: Graph) -> list[str]:
    """The learned parameters (not buffers) their ops call weights (`OpDef.is_weight`:
    what init schemes draw and sparsity thins), in the order of `graph.parameters`."""
    ops = {node.module: registry.get(node.op) for node in graph.nodes}
    found = []
    for name, param in graph.parameters.items():
        op = ops.get(param.module)
        if not param.buffer and op is not None and op.is_weight(param.role):
            found.append(name)
    return found


def role_parameters(roles: ParamRoles, module: str) -> tuple[str, ...]:
    """The names the weight and bias of a layer at `module` have, where declared."""
    return tuple(f"{module}.{role}" for role in (roles.weight, roles.bias) if role is not None)
