"""One test over every built-in op: shape rule, parameters, torch and ONNX agree.

Each op's `examples` (spec snippets) run through the whole compiler, at several
concrete sizes for their symbolic dims, by `dslnet.testing.check_op`'s steps (the
same check users run on their own ops). A new op is covered when it arrives.
"""

from __future__ import annotations

import pytest

from dslnet.ops import registry
from dslnet.testing import check_example, check_facets

BUILTIN = registry.builtin_ops()
CASES = [
    pytest.param(name, i, id=f"{name}-{i}")
    for name, op in BUILTIN.items()
    for i in range(len(op.examples))
]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_op_has_every_facet(name: str) -> None:
    check_facets(name)


@pytest.mark.parametrize(("name", "example"), CASES)
def test_op_conformance(name: str, example: int) -> None:
    check_example(name, example)
