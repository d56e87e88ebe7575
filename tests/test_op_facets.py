"""Capabilities ops declare and the code that asks for them: input domains (what data
an input must hold), the operator a spec writes for an op, and a torch form written
at each use. Each is checked at registration; a user's op declaring one is treated
like a built-in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from pydantic import Field

import dslnet
from dslnet.backends.quantize import load_calibration
from dslnet.ir.domains import InputDomain, domain_uses, input_domains
from dslnet.ops import DType, OpAttrs, OpDef, OpDefinitionError, TensorType, register, registry
from dslnet.ops.domains import ClassLabels, Indices, Probabilities
from dslnet.testing import random_feeds
from dslnet.training import data

LOSSES = """
network Net() {
  in x: float32[N, 5]
  in t: int64[N]
  in ids: int64[N, T]
  in p: float32[N, 5]
  in v: float32[N, 5]
  layer tok = embedding(9, 5)
  out e = tok(ids)
  out loss = cross_entropy(x, t, ignore_index=-1)
  out acc = accuracy(x, t)
  out b = bce_loss(sigmoid(x), p)
  out y = embedding(ids, 7, 3)
  out z = tok(v)
}
"""


@pytest.fixture(scope="module")
def losses() -> Any:
    return dslnet.loads(LOSSES).ir("Net")


def test_each_input_gets_the_domain_its_readers_declare(losses: Any) -> None:
    assert input_domains(losses) == {
        "t": InputDomain("labels", 5),
        "ids": InputDomain("indices", 7),  # the smaller of the two tables
        "p": InputDomain("probabilities", None),
    }
    uses = [(u.value, u.node.op, u.position, u.limit, u.skipped) for u in domain_uses(losses)]
    assert uses == [
        ("ids", "embedding", 0, 9, None),  # tok(v), the tied projection of floats: no read
        ("t", "cross_entropy", 1, 5, -1),
        ("t", "accuracy", 1, 5, -100),
        ("p", "bce_loss", 1, None, None),
        ("ids", "embedding", 0, 7, None),
    ]


def test_generated_data_lies_in_the_domains(losses: Any) -> None:
    feeds = random_feeds(losses, {"N": 64, "T": 16}, np.random.default_rng(0))
    assert feeds["t"].min() >= 0 and feeds["t"].max() == 4
    assert feeds["ids"].max() == 6
    assert feeds["p"].min() >= 0 and feeds["p"].max() <= 1
    types = {name: losses.type_of(name) for name in losses.inputs}
    arrays = data.synthetic(types, [losses], samples=64, seed=0)
    assert set(arrays["t"].unique().tolist()) == set(range(5))
    assert set(arrays["p"].unique().tolist()) <= {0.0, 1.0}
    assert int(arrays["ids"].max()) < 7


def test_data_out_of_its_domain_is_refused_naming_the_op(losses: Any) -> None:
    types = {name: losses.type_of(name) for name in losses.inputs}
    good = {k: torch.as_tensor(v) for k, v in data.synthetic(types, [losses], 8, 0).items()}
    data.check_indices(good, types, [losses], "data.npz")
    # -1 is cross_entropy's ignore_index, not accuracy's: each reader checks its own.
    message = (
        r"holds class labels from -1 to -1; accuracy accepts 0 to 4 \(or the ignore_index -100\)$"
    )
    with pytest.raises(data.TrainError, match=message):
        data.check_indices(dict(good, t=torch.full((8,), -1)), types, [losses], "data.npz")
    message = r"^array 't' in data.npz holds class labels from 5 to 5; cross_entropy accepts 0 to 4"
    with pytest.raises(data.TrainError, match=message):
        data.check_indices(dict(good, t=torch.full((8,), 5)), types, [losses], "data.npz")
    rows = dict(good, ids=torch.full((8, 3), 8))
    with pytest.raises(
        data.TrainError, match=r"holds embedding rows from 8 to 8; embedding accepts 0 to 6$"
    ):
        data.check_indices(rows, types, [losses], "data.npz")


def test_calibration_draws_from_the_domains_of_the_ir() -> None:
    program = dslnet.loads(
        "network Net() {\n  in ids: int64[N, T]\n  out y = embedding(ids, 500, 4)\n}\n"
    )
    model: onnx.ModelProto = program.onnx("Net")
    sizes = {"N": 8, "T": 32}
    plain = load_calibration(None, model, count=1, symbols=sizes)[0]["ids"]
    assert set(np.unique(plain)) <= {0, 1}  # without the IR: small integers
    domains = input_domains(program.ir("Net"))
    feed = load_calibration(None, model, count=1, symbols=sizes, domains=domains)[0]["ids"]
    assert 100 < feed.max() < 500


# --- a user's op declaring capabilities -------------------------------------------------


class PickAttrs(OpAttrs):
    rows: int = Field(3, description="rows of the table")


def _user_op(name: str = "pick", **facets: Any) -> type[OpDef]:
    body: dict[str, Any] = {
        "name": name,
        "family": "user",
        "Attrs": PickAttrs,
        "infer": lambda self, attrs, inputs: (inputs[0],),
        "torch_expr": lambda self, attrs, args, inputs: args[0],
        "onnx": lambda self, attrs, ctx: ctx.add_node("Identity", ctx.inputs, ctx.outputs),
    }
    body.update(facets)
    cls = type("UserOp", (OpDef,), body)
    cls.__module__ = "tests.test_op_facets"
    return cls


@pytest.mark.parametrize(
    ("facets", "message"),
    [
        (
            {"input_domains": {"ids": Indices(size="rows")}},
            "input_domains['ids'] names no input of the op (its inputs: x)",
        ),
        (
            {"input_domains": {"x": Indices(size="cols")}},
            "input_domains['x']: size='cols' must name an int attribute of the op",
        ),
        (
            {"input_domains": {"x": ClassLabels(scores="x")}},
            "scores='x' must name another input of the op",
        ),
        (
            {"inputs": ("x", "t"), "input_domains": {"t": ClassLabels("x", ignore="skip")}},
            "ignore='skip' is not an attribute of the op",
        ),
        ({"input_domains": {"x": "labels"}}, "must be a ClassLabels, Probabilities or Indices"),
        ({"input_domains": ["x"]}, "its input_domains must map input names to a domain"),
        (
            {"operator": "+"},
            "must be one of + - * / // % ** == != < <= > >= (or None), on an op of exactly two",
        ),
        ({"inputs": ("a", "b"), "operator": "@"}, "its operator '@' must be one of"),
        (
            {"inputs": ("a", "b"), "operator": "*"},
            "its operator '*' is already the one of op 'mul' (dslnet (built-in",
        ),
        ({"torch_inline": True}, "its torch_inline must be True only for an op without inputs"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_bad_declaration_is_refused_at_registration(facets: dict[str, Any], message: str) -> None:
    with registry.scoped():
        with pytest.raises(OpDefinitionError) as err:
            register(_user_op(**facets))
        assert message in str(err.value)


def _take(self: OpDef, attrs: Any, inputs: Sequence[TensorType]) -> tuple[TensorType, ...]:
    return (inputs[0].with_shape(inputs[0].shape),)


def test_a_users_input_domain_drives_the_generated_data() -> None:
    with registry.scoped():
        register(
            _user_op(
                infer=_take,
                input_domains={"x": Indices(size="rows", what="rows")},
            )
        )
        graph = dslnet.loads(
            "network Net() {\n  in i: int64[N]\n  out y = pick(i, rows=40)\n}\n"
        ).ir("Net")
        assert input_domains(graph) == {"i": InputDomain("indices", 40)}
        feeds = random_feeds(graph, {"N": 200}, np.random.default_rng(1))
        assert feeds["i"].max() == 39
        with pytest.raises(data.TrainError, match="holds rows from 40 to 40; pick accepts"):
            data.check_indices(
                {"i": torch.full((4,), 40)}, {"i": graph.type_of("i")}, [graph], "d.npz"
            )


def test_a_users_op_can_declare_an_operator_and_a_literal() -> None:
    with registry.scoped():
        register(
            _user_op(
                "remainder",
                inputs=("a", "b"),
                operator="%",
                Attrs=OpAttrs,
                infer=_take,
                torch_expr=lambda self, attrs, args, inputs: f"torch.remainder({', '.join(args)})",
                onnx=lambda self, attrs, ctx: ctx.add_node("Mod", ctx.inputs, ctx.outputs, fmod=1),
            )
        )
        register(
            _user_op(
                "three",
                inputs=(),
                Attrs=OpAttrs,
                torch_inline=True,
                infer=lambda self, attrs, inputs: (TensorType(dtype=DType.float32, shape=()),),
                torch_expr=lambda self, attrs, args, inputs: "3.0",
            )
        )
        assert registry.operators()["%"].name == "remainder"
        program = dslnet.loads(
            "network Net() {\n  in a: float32[N]\n  in b: float32[N]\n"
            "  out y = a % b\n  out z = a * three()\n}\n"
        )
        assert [n.op for n in program.ir("Net").nodes] == ["remainder", "three", "mul"]
        source = program.torch_source("Net")
        assert "torch.remainder(a, b)" in source and "z = a * 3.0" in source


def test_the_builtin_operators_and_the_error_listing_them() -> None:
    assert {s: op.name for s, op in registry.operators().items()} == {
        "+": "add",
        "-": "sub",
        "*": "mul",
        "/": "div",
        "**": "pow",
        "==": "equal",
        "!=": "not_equal",
        "<": "less",
        "<=": "less_equal",
        ">": "greater",
        ">=": "greater_equal",
    }
    assert isinstance(registry.get("bce_loss").input_domains["target"], Probabilities)  # type: ignore[union-attr]
    with pytest.raises(dslnet.CompileError, match=r"on tensors are \+ - \* / \*\* == != <"):
        dslnet.loads("network Net() {\n  in a: float32[N]\n  out y = a % a\n}\n").ir("Net")
