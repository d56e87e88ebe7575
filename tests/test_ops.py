"""The op registry: every op's facets, attribute binding and shape rules."""

from __future__ import annotations

import pytest

from dslnet.core.symbolic import SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.ops import registry
from dslnet.ops.registry import AttrError, OpAttrs, OpDef, ShapeError

N = SymExpr.symbol("N")


def t(*shape: int | SymExpr, dtype: DType = DType.float32) -> TensorType:
    return TensorType(dtype=dtype, shape=shape)


@pytest.mark.parametrize("name", sorted(registry.all_ops()))
def test_every_op_defines_its_facets(name: str) -> None:
    op = registry.get(name)
    assert isinstance(op, OpDef) and op.name == name
    assert op.family and op.doc, f"{name} needs a family and a doc line"
    assert issubclass(op.Attrs, OpAttrs)
    assert type(op).infer is not OpDef.infer, f"{name} has no shape rule"
    for field, info in op.Attrs.model_fields.items():
        assert info.description, f"{name}.{field} needs a description"


def test_bind_attrs_positional_named_and_aliases() -> None:
    op = registry.get("linear")
    assert op is not None
    attrs = op.bind_attrs([10], {"bias": False})
    assert attrs.model_dump() == {"features": 10, "bias": False}


@pytest.mark.parametrize(
    ("positional", "named", "message"),
    [
        ([], {}, "linear needs argument 'features' (int)"),
        (["a"], {}, "argument 'features' of linear expects int, got str 'a'"),
        ([2.5], {}, "argument 'features' of linear expects int, got float 2.5"),
        ([0], {}, "argument 'features' of linear must be greater than 0, got int 0"),
        ([3], {"bais": True}, "linear has no argument 'bais' (did you mean 'bias'?)"),
        ([3, True, 4], {}, "linear takes 1 positional argument (features), got 3 (3, true, 4)"),
        ([3, True], {}, "bias is keyword-only: write linear(3, bias=true)"),
        ([3], {"features": 4}, "argument 'features' of linear is given twice"),
    ],
)
def test_bind_attrs_explains_each_problem(
    positional: list[object], named: dict[str, object], message: str
) -> None:
    op = registry.get("linear")
    assert op is not None
    with pytest.raises(AttrError) as err:
        op.bind_attrs(positional, named)
    assert any(message in m for m in err.value.messages), err.value.messages


def test_symbolic_attribute_is_refused_with_its_value() -> None:
    op = registry.get("linear")
    assert op is not None
    with pytest.raises(AttrError, match="expects int, got symbolic dimension N"):
        op.bind_attrs([N], {})


def infer(name: str, *inputs: TensorType, **attrs: object) -> list[str]:
    op = registry.get(name)
    assert op is not None
    bound = op.bind_attrs([], attrs)
    return [str(o) for o in op.infer(bound, list(inputs))]


def test_linear_rule_and_parameters() -> None:
    assert infer("linear", t(N, 7, 5), features=3) == ["float32[N, 7, 3]"]
    op = registry.get("linear")
    assert op is not None
    assert op.params(op.bind_attrs([3], {}), [t(N, 5)]) == {"weight": (3, 5), "bias": (3,)}
    with pytest.raises(ShapeError, match="needs a known input feature size"):
        infer("linear", t(N, SymExpr.symbol("D")), features=3)


def test_broadcasting_rules() -> None:
    assert infer("add", t(N, 1, 4), t(3, 1)) == ["float32[N, 3, 4]"]
    assert infer("mul", t(N, 4), t()) == ["float32[N, 4]"]
    with pytest.raises(ShapeError, match=r"shapes \[N, 256\] and \[N, 128\] do not match"):
        infer("add", t(N, 256), t(N, 128))
    with pytest.raises(ShapeError, match="dtypes differ"):
        infer("sub", t(N, 4), t(N, 4, dtype=DType.float16))
    with pytest.raises(ShapeError, match=r"axis -2: N vs M"):
        infer("add", t(N, 4), t(SymExpr.symbol("M"), 4))


def test_flatten_concat_softmax_rules() -> None:
    assert infer("flatten", t(N, 3, 4, 5)) == ["float32[N, 60]"]
    assert infer("flatten", t(N, 3, 4, 5), start_axis=2) == ["float32[N, 3, 20]"]
    assert infer("concat", t(N, 3, 8), t(N, 5, 8), axis=1) == ["float32[N, 8, 8]"]
    with pytest.raises(ShapeError, match="axis 2: 9 vs 8"):
        infer("concat", t(N, 3, 8), t(N, 5, 9), axis=1)
    with pytest.raises(ShapeError, match="axis 2 is out of range"):
        infer("softmax", t(N, 3), axis=2)


def test_activations_need_floating_point() -> None:
    assert infer("gelu", t(N, 3), approximate="tanh") == ["float32[N, 3]"]
    with pytest.raises(ShapeError, match="relu needs a floating-point input"):
        infer("relu", t(N, 3, dtype=DType.int64))


def test_registering_a_users_op_needs_a_new_name() -> None:
    class Twice(OpDef):
        name = "relu"
        family = "user"
        doc = "clash"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Twice)
