"""What an op tells the reduction passes about its channels.

Structured pruning and batchnorm folding never look at op names: each op says
how the channels of its inputs become the channels of its outputs, and which
parameter axes those channels index. An op that says nothing pins the channels
of everything it touches (they are never pruned), which is always correct.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from dslnet.ops.roles import ParamRoles

Kind = Literal["make", "keep", "join", "inner"]


class Placed(NamedTuple):
    """A parameter axis indexed by an op's own units: `copies` runs of all the units
    end to end (gate blocks, directions, q/k/v), each unit `repeat` consecutive entries
    (the width of an attention head)."""

    role: str
    axis: int
    copies: int = 1
    repeat: int = 1
    scored: bool = True  # its magnitudes rank the units when pruning (a bias's do not)


@dataclass(frozen=True)
class Channels:
    """How one op call moves channels.

    kind:
        make: the outputs are new units (a linear's features, a conv's filters).
            `out_attr` holds their count; `out_params` maps a parameter to the axis
            its output units lie on; `in_params` to the axis indexed by the channels
            of input 0 (on `axis`).
        keep: output channel i is made from channel i of every channel-carrying input
            (activations, pooling, norms, elementwise arithmetic); `params` lie on the
            channel set, `count_attrs` hold its size.
        join: concatenation of the inputs' channels along `axis`.
        inner: the op mixes its inputs' channels (they are pinned) but has units of its
            own that never leave it (attention heads), `out_attr` of them.
    axis: the channel axis of the inputs (negative counts from the end); None for
        elementwise ops that keep any axis.
    out_axis: where the channels are in the output (None: where they were).
    repeat: each input channel becomes this many consecutive output entries (a
        flatten of [C, H, W] into C*H*W features repeats each channel H*W times).
    inputs: which inputs carry the channels (the rest are untouched, e.g. indices).
    foldable_affine: in eval mode the op is y = x * scale + shift per channel, given
        by `affine(attrs, weights)`; it can fold into the layer that makes x.
    mixes: axes along which the op mixes entries (softmax's axis, layernorm's
        normalized axes): channels there are pinned.
    unit_params: make, inner: more parameter axes indexed by the op's units (a recurrent
        layer's gate blocks, a graph attention layer's heads, the input of its next
        layer, the rows of each head in a q/k/v projection).
    set_attrs: attributes to write when units are removed (a width they implied).
    out_copies: make: per output, how many times the units lie end to end on its
        channel axis (a bidirectional layer's two directions); 1 when not given.
    state_inputs: make: inputs whose channels are the new units themselves (a
        recurrent layer's initial states), tied to them.
    """

    kind: Kind
    axis: int | None = None
    out_axis: int | None = None
    repeat: int = 1
    inputs: tuple[int, ...] = (0,)
    out_attr: str | None = None
    out_params: Mapping[str, int] = field(default_factory=dict)
    in_params: Mapping[str, int] = field(default_factory=dict)
    mixes: tuple[int, ...] = ()
    params: Mapping[str, int] = field(default_factory=dict)
    count_attrs: tuple[str, ...] = ()
    foldable_affine: bool = False
    unit_params: tuple[Placed, ...] = ()
    set_attrs: Mapping[str, Any] = field(default_factory=dict)
    out_copies: tuple[int, ...] = ()
    state_inputs: tuple[int, ...] = ()


ELEMENTWISE = Channels("keep")


def units(axis: int, out_attr: str, roles: ParamRoles) -> Channels:
    """A layer making `out_attr` new units, laid out as its parameter roles say: the
    weight's out_axis and the bias hold them, its in_axis reads the input's channels on
    `axis`."""
    weight, out_axis, in_axis = roles.weight, roles.out_axis, roles.in_axis
    assert weight is not None and out_axis is not None and in_axis is not None, roles
    out_params = {weight: out_axis} | ({roles.bias: 0} if roles.bias is not None else {})
    return Channels(
        "make", axis=axis, out_attr=out_attr, out_params=out_params, in_params={weight: in_axis}
    )
