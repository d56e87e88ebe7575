"""Provenance of emitted ONNX nodes: the IR node (or block call) each one lowers.

The ONNX emitter records it in each node's `metadata_props`:

* `dslnet.node` on a node that lowers an IR node: that node's name (`res1.linear1`);
* `dslnet.call` on a call of a block function: the call's path (`basic_stage1`), the
  value prefix of the IR nodes inside it.

A function body is shared by every call of its block, so inside a body both are
relative to the call (`conv2d1`, `basic_block1`), and inlining a call (`inline`)
makes them whole again: the call's path, a dot, the relative name. Where that is not
the IR node's name (in a `layer`'s second use `enc@2`, the IR calls the nodes
`enc.conv2d1@2`), the top-level call node lists the exceptions of its whole subtree
under `dslnet.names` (JSON, relative path -> IR node): bodies stay the same for every
call. The Identity nodes that copy a value to a spec output lower no IR node and carry
none of this.

Metadata travels with a node through copies, renames and reordering, so the map
survives tools that rewrite node names; nothing reads an IR node out of a node name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise

import onnx

from dslnet.ir.graph import CallInfo, Node

__all__ = [
    "CALL_KEY",
    "NAMES_KEY",
    "NODE_KEY",
    "block_call",
    "call_names",
    "compose",
    "inline",
    "ir_node",
    "provenance",
    "record",
    "record_call_names",
    "relative_call",
    "relative_name",
    "relative_path",
]

NODE_KEY = "dslnet.node"
CALL_KEY = "dslnet.call"
NAMES_KEY = "dslnet.names"


def record(proto: onnx.NodeProto, key: str, value: str) -> None:
    """Set `key` to `value` in the node's metadata (replacing an earlier value)."""
    for entry in proto.metadata_props:
        if entry.key == key:
            entry.value = value
            return
    entry = proto.metadata_props.add()
    entry.key = key
    entry.value = value


def _read(proto: onnx.NodeProto, key: str) -> str | None:
    return next((entry.value for entry in proto.metadata_props if entry.key == key), None)


def ir_node(proto: onnx.NodeProto) -> str | None:
    """The IR node `proto` lowers (relative to its call inside a function body)."""
    return _read(proto, NODE_KEY)


def block_call(proto: onnx.NodeProto) -> str | None:
    """The path of the block call a function call node stands for."""
    return _read(proto, CALL_KEY)


def call_names(proto: onnx.NodeProto) -> dict[str, str]:
    """A call node's exceptions to `compose`: relative name -> IR node."""
    text = _read(proto, NAMES_KEY)
    return dict(json.loads(text)) if text else {}


def record_call_names(proto: onnx.NodeProto, names: dict[str, str]) -> None:
    if names:
        record(proto, NAMES_KEY, json.dumps(dict(sorted(names.items()))))


def compose(path: str, relative: str) -> str:
    """The whole name of what a body node (or nested call) inside call `path` lowers."""
    return f"{path}.{relative}"


def relative_call(path: str, outer: CallInfo) -> str:
    """The path of a call nested in `outer`, relative to `outer`'s body."""
    for prefix in (outer.prefix, outer.instance + "."):
        if path.startswith(prefix) and len(path) > len(prefix):
            return path[len(prefix) :]
    return path


def relative_path(node: Node, calls: Sequence[CallInfo]) -> str:
    """What inlining composes below the outermost of `calls` (the block calls `node`
    lies in, outermost first): the nested calls' relative paths, then the node's."""
    pieces = [relative_call(inner.prefix.rstrip("."), outer) for outer, inner in pairwise(calls)]
    return ".".join([*pieces, relative_name(node, calls[-1])])


def relative_name(node: Node, call: CallInfo) -> str:
    """`node`'s provenance inside the body of `call`: its name without the call's value
    prefix; in a layer's later use (prefix `enc@2.`, node `enc.conv2d1@2`) its module
    without the layer's, as in the first use, so that both uses share one body."""
    if node.name.startswith(call.prefix):
        return node.name[len(call.prefix) :]
    if node.module.startswith(call.instance + "."):
        return node.module[len(call.instance) + 1 :]
    return node.name


def inline(node: onnx.NodeProto, call: onnx.NodeProto) -> None:
    """Make the provenance of `node`, a copy of a body node of the function `call`
    calls, whole (it is dropped when the call has none: it would name the wrong
    nodes)."""
    relative, nested = ir_node(node), block_call(node)
    kept = [e for e in node.metadata_props if e.key not in (NODE_KEY, CALL_KEY, NAMES_KEY)]
    del node.metadata_props[:]
    node.metadata_props.extend(kept)
    path = block_call(call)
    if path is None:
        return
    exceptions = call_names(call)
    if relative is not None:
        record(node, NODE_KEY, exceptions.get(relative) or compose(path, relative))
    if nested is not None:  # the exceptions below it go with it
        record(node, CALL_KEY, compose(path, nested))
        below = nested + "."
        inner = {k[len(below) :]: v for k, v in exceptions.items() if k.startswith(below)}
        record_call_names(node, inner)


def provenance(model: onnx.ModelProto) -> dict[str, str]:
    """The top-level graph's map: ONNX node name -> the IR node (or block call) it
    lowers. Nodes that lower none (output Identities) are absent."""
    found: dict[str, str] = {}
    for node in model.graph.node:
        origin = ir_node(node) or block_call(node)
        if origin is not None:
            found[node.name] = origin
    return found
