"""Input domains: the values an op accepts in an input that consumes data.

Most inputs take any value of their dtype. A few read data in a narrower domain: a
loss's class labels, a binary target, an embedding's ids. An op declares them once,

    input_domains = {"target": ClassLabels(scores="logits", ignore="ignore_index")}

and everything that makes or checks data for a network asks (dslnet.ir.domains walks
a graph and says, for each graph input, which domain the ops reading it need): the
training data generator and the `.npz` range check, benchmark and calibration feeds,
`dslnet.testing`'s random inputs and the differential fuzzer.

A domain is resolved against one call (`limit`): the number of valid values, from
another input's shape or from an attribute. Registration checks a declaration
(`declaration_problems`): it must name the op's own inputs and attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dslnet.core.types import TensorType

if TYPE_CHECKING:
    from dslnet.ops.opdef import OpDef

__all__ = [
    "ClassLabels",
    "Domain",
    "Indices",
    "Probabilities",
    "declaration_problems",
]


@dataclass(frozen=True)
class ClassLabels:
    """Integer class labels in [0, C): C is axis `axis` of the input `scores` (the
    logits the labels are scored against). A label equal to the attribute `ignore`
    (when given, e.g. "ignore_index") is skipped, whatever its value."""

    scores: str
    axis: int = 1
    ignore: str | None = None

    integer = True
    what = "class labels"

    def limit(self, op: OpDef, attrs: Any, inputs: Sequence[TensorType]) -> int | None:
        """C for this call (None: not a fixed size)."""
        position = (*op.inputs, *op.optional_inputs).index(self.scores)
        scores = inputs[position] if position < len(inputs) else None
        if scores is None or not -scores.rank <= self.axis < scores.rank:
            return None
        size = scores.shape[self.axis]
        return size if isinstance(size, int) else None

    def skipped(self, attrs: Any) -> int | None:
        """The label that is left out (None: every label counts)."""
        value = getattr(attrs, self.ignore, None) if self.ignore else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Probabilities:
    """Values in [0, 1]: a binary target, or the probability of one."""

    integer = False
    what = "probabilities"

    def limit(self, op: OpDef, attrs: Any, inputs: Sequence[TensorType]) -> int | None:
        return None

    def skipped(self, attrs: Any) -> int | None:
        return None


@dataclass(frozen=True)
class Indices:
    """Integer indices in [0, n): n is the int attribute `size` (an embedding's
    num_embeddings, the rows of its table). Only an integer input is read so: the
    same op may take floats there with another meaning (a tied output projection)."""

    size: str
    what: str = "indices"  # how an error names the values: "embedding rows"

    integer = True

    def limit(self, op: OpDef, attrs: Any, inputs: Sequence[TensorType]) -> int | None:
        value = getattr(attrs, self.size, None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def skipped(self, attrs: Any) -> int | None:
        return None


Domain = ClassLabels | Probabilities | Indices


def declaration_problems(cls: type[OpDef]) -> list[str]:
    """What is wrong with `cls.input_domains` (empty when nothing is)."""
    declared = getattr(cls, "input_domains", {})
    if not isinstance(declared, Mapping):
        return [
            f"its input_domains must map input names to a domain (ClassLabels, "
            f"Probabilities or Indices from dslnet.ops.domains), got {declared!r}"
        ]
    inputs = tuple(
        name
        for names in (cls.inputs, cls.optional_inputs)
        if isinstance(names, tuple)
        for name in names
    )
    fields = getattr(getattr(cls, "Attrs", None), "model_fields", {})
    problems = []
    for name, domain in declared.items():
        where = f"input_domains[{name!r}]"
        if name not in inputs:
            have = ", ".join(map(str, inputs)) or "none"
            problems.append(f"{where} names no input of the op (its inputs: {have})")
        if not isinstance(domain, (ClassLabels, Probabilities, Indices)):
            problems.append(
                f"{where} must be a ClassLabels, Probabilities or Indices (dslnet.ops.domains), "
                f"got {domain!r}"
            )
            continue
        if isinstance(domain, ClassLabels):
            if domain.scores not in inputs or domain.scores == name:
                problems.append(
                    f"{where}: scores={domain.scores!r} must name another input of the op, "
                    f"the one whose axis {domain.axis} counts the classes"
                )
            if domain.ignore is not None and domain.ignore not in fields:
                problems.append(f"{where}: ignore={domain.ignore!r} is not an attribute of the op")
        if isinstance(domain, Indices) and not _int_field(fields, domain.size):
            problems.append(
                f"{where}: size={domain.size!r} must name an int attribute of the op (the "
                f"number of valid indices)"
            )
    return problems


def _int_field(fields: Any, name: str) -> bool:
    info = fields.get(name)
    return info is not None and info.annotation is int
