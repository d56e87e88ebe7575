"""A generator of random specs from the language's constructs, for fuzzing.

It writes imports, constants, blocks and networks with parameters, `in` types,
pipelines of registered ops, residual adds, concatenation, shared layers, loops,
conditions and annotations. Half of its specs are meant to compile (ops called as their
own examples call them, dslnet.fuzz.opprofiles); the other half carry deliberate
mistakes (implausible attributes, huge or negative sizes, unknown names, missing
imports): near misses that reach deep into the checker.
"""

from __future__ import annotations

import functools
import random
import re
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from dslnet.fuzz.mutate import NUMBERS, STRINGS
from dslnet.fuzz.opprofiles import OpProfile, op_profiles
from dslnet.ops.registry import operators

GOOD_ANNOTATIONS = ("@freeze", "@prune(0.5)", "@prune(0.25)", "@quantize(skip)")
BAD_ANNOTATIONS = ("@prune(1.5)", '@prune("half")', "@quantize(int4)", "@freeze(1)", "@frezee")
FLOATS = ("float16", "bfloat16", "float64")
ODD_DIMS = ("H / 2", "2 * C", "W - 1", "-3", "0", "1e308", "2.5", '"C"', "N * N", "B")


@functools.cache
def _spec_files(directory: Path) -> tuple[str, ...]:
    """The specs a generated one may import: the files beside it."""
    return tuple(sorted(p.name for p in directory.glob("*.net")))


class _Kind(Enum):
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"


@dataclass
class _Tensor:
    name: str
    rank: int


@dataclass(frozen=True)
class _BlockSig:
    name: str
    rank: int  # of its first input
    inputs: int
    params: tuple[tuple[str, _Kind], ...]


class SpecGenerator:
    """Writes one random spec. A `faulty` one has deliberate mistakes here and there;
    the others are meant to compile, and about a third do (the generator follows ranks,
    not every size an op needs)."""

    def __init__(self, rng: random.Random, directory: Path) -> None:
        self.rng = rng
        self.faulty = rng.random() < 0.5
        self.importable = _spec_files(directory)
        profiles = op_profiles()
        self.all_ops = profiles
        # Ops the clean specs use: one float tensor in, one out, called as their examples
        # call them (less those whose arguments name the example's sizes: `[N, C, H*W]`).
        self.plain_ops = [
            p
            for p in profiles
            if p.compiles
            and (p.inputs, p.targets, p.dtype) == (1, 1, "float32")
            and not re.search(r"\b[A-Z]\b", p.args)
        ]
        self.blocks: list[_BlockSig] = []
        self.consts: list[tuple[str, _Kind]] = []
        self.counter = 0
        # The declaration being written: its lines, tensors, scalars, layers and depth.
        self.lines: list[str] = []
        self.tensors: list[_Tensor] = []
        self.scalars: list[tuple[str, _Kind]] = []
        self.layers: list[tuple[str, int]] = []
        self.depth = 0

    def spec(self) -> str:
        rng = self.rng
        chunks = []
        if self.odd(0.5):
            bad = ("missing.net", "sub/none.net", "../outside.net", "", "generated.net")
            chunks.append(f'import "{rng.choice(bad)}"')
        elif self.importable and self.chance(0.1):
            chunks.append(f'import "{rng.choice(self.importable)}"')
        for _ in range(rng.choice((0, 0, 1, 2))):
            name, kind = self.fresh("K").upper(), rng.choice(list(_Kind))
            chunks.append(f"const {name} = {self.scalar(kind)}")
            self.consts.append((name, kind))
        for decl in ["block"] * rng.choice((0, 1, 1, 2, 3)) + ["network"] * rng.choice((1, 1, 2)):
            chunks.append(self.decl(decl))
        if rng.random() < 0.2:  # blocks used before they are declared
            rng.shuffle(chunks)
        return "\n".join(chunks) + "\n"

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}{self.counter}"

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def odd(self, p: float) -> bool:
        """Whether to put a deliberate mistake here (never in a clean spec)."""
        return self.faulty and self.rng.random() < p

    # --- declarations ------------------------------------------------------------

    def decl(self, kind: str) -> str:
        rng = self.rng
        is_network = kind == "network"
        name = self.fresh("Net" if is_network else "Block")
        params = [(self.fresh("p"), rng.choice(list(_Kind))) for _ in range(rng.randint(0, 3))]
        rank = rng.choice((2, 2, 3, 3, 4, 4, 5))
        inputs = 1 if self.chance(0.8) else 2
        self.lines, self.tensors, self.layers, self.depth = [], [], [], 1
        self.scalars = list(self.consts)  # what defaults may use
        self.lines += self.annotations(0.15)
        self.lines.append(f"{kind} {name}({self.param_list(params, is_network)}) {{")
        self.scalars += params
        for k in range(inputs):
            tensor = _Tensor(self.fresh("x"), rank if k == 0 else rng.choice((rank, 2)))
            self.emit(f"in {tensor.name}: {self.tensor_type(tensor.rank, is_network)}")
            self.tensors.append(tensor)
            if not is_network:  # a block's sizes: C, H... are bound by its input
                self.scalars += [(d, _Kind.INT) for d in ("C", "D") if d in self.lines[-1]]
        for _ in range(rng.randint(1, 6)):
            self.statement()
        self.outputs()
        self.lines.append("}")
        if not is_network or self.chance(0.3):  # networks may be used as blocks
            self.blocks.append(_BlockSig(name, rank, inputs, tuple(params)))
        return "\n".join(self.lines)

    def param_list(self, params: list[tuple[str, _Kind]], is_network: bool) -> str:
        parts = []
        for name, kind in params:
            text = name if self.odd(0.05) else f"{name}: {self.type_name(kind)}"
            if (is_network and not self.odd(0.1)) or self.chance(0.5):
                text += f" = {self.scalar(kind, own=name)}"
            parts.append(text)
        return ", ".join(parts)

    def type_name(self, kind: _Kind) -> str:
        return self.rng.choice(("tensor", "list", "Int")) if self.odd(0.05) else kind.value

    def tensor_type(self, rank: int, concrete: bool) -> str:
        dims = [self.dim(k, rank, concrete) for k in range(rank)]
        if concrete or self.chance(0.2):
            dtype = "float32" if self.chance(0.85) else self.rng.choice(FLOATS)
            if self.odd(0.2):
                dtype = self.rng.choice(("int64", "int8", "uint8", "bool", "float", "f32"))
            return f"{dtype}[{', '.join(dims)}]"
        return f"[{', '.join(dims)}]"

    def dim(self, axis: int, rank: int, concrete: bool) -> str:
        """Batch N; channels small; the last axis (features) known; the others, sizes
        such as H, T, often symbolic. A block's input may leave channels to its caller."""
        rng = self.rng
        if self.odd(0.04):
            return rng.choice(ODD_DIMS)
        if axis == 0:
            return "N"
        if axis == 1 and not concrete and self.chance(0.3):
            return "C" if rank > 2 else "D"
        if axis == 1:
            ints = [n for n, k in self.scalars if k is _Kind.INT]
            if concrete and ints and self.chance(0.1):
                return rng.choice(ints)
            return str(rng.choice((2, 3, 4, 8, 16)))
        if axis < rank - 1 and self.chance(0.5):
            return rng.choice(("H", "W", "T", "S"))
        return str(rng.choice((8, 16, 32)))

    def annotations(self, p: float) -> list[str]:
        if self.odd(p / 2):
            return [self.rng.choice(BAD_ANNOTATIONS)]
        return [self.rng.choice(GOOD_ANNOTATIONS)] if self.chance(p) else []

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    # --- statements ---------------------------------------------------------------

    def statement(self) -> None:
        roll = self.rng.random() if self.depth <= 3 else 0.0  # bounded nesting
        if roll < 0.5:
            self.assign()
        elif roll < 0.55:
            self.multi_assign()
        elif roll < 0.65:
            self.layer()
        elif roll < 0.75:
            self.loop()
        elif roll < 0.82:
            self.repeat()
        elif roll < 0.92:
            self.condition()
        else:
            name, kind = self.fresh("c"), self.rng.choice(list(_Kind))
            self.emit(f"const {name} = {self.scalar(kind)}")
            self.scalars.append((name, kind))

    def assign(self) -> None:
        source = self.rng.choice(self.tensors)
        expr, rank = self.tensor_expr(source)
        # Rebinding a name is how loops carry a value: x = x -> f.
        target = source.name if self.chance(0.4) else self.fresh("h")
        self.emit(" ".join([*self.annotations(0.08), f"{target} = {expr}"]))
        self.tensors.append(_Tensor(target, rank))

    def multi_assign(self) -> None:
        """An op with several outputs (lstm, split), each bound to a name."""
        many = [p for p in self.all_ops if p.targets > 1 and (p.compiles or self.faulty)]
        op = self.rng.choice(many)
        source = self.rng.choice([t for t in self.tensors if t.rank == op.rank] or self.tensors)
        names = [self.fresh("m") for _ in range(op.targets + (1 if self.odd(0.2) else 0))]
        self.emit(f"{', '.join(names)} = {op.name}({source.name}, {self.op_args(op)})")
        self.tensors += [_Tensor(n, op.out_rank) for n in names]

    def layer(self) -> None:
        name = self.fresh("shared")
        if self.blocks and self.chance(0.3):
            block = self.rng.choice(self.blocks)
            self.emit(f"layer {name} = {block.name}({self.block_args(block)})")
            self.layers.append((name, block.rank))
        else:
            op = self.pick_op(self.rng.choice(self.tensors).rank)
            self.emit(f"layer {name} = {op.name}({self.op_args(op)})")
            self.layers.append((name, op.out_rank))

    def loop(self) -> None:
        rng = self.rng
        var = self.fresh("i")
        if self.chance(0.4):
            pairs = ", ".join(f"({rng.choice((2, 4, 8))}, {rng.randint(1, 2)})" for _ in "ab")
            second = self.fresh("s")
            self.emit(f"for ({var}, {second}) in [{pairs}] {{")
            self.scalars += [(var, _Kind.INT), (second, _Kind.INT)]
        elif self.chance(0.5):
            self.emit(f"for {var} in range({self.count()}) {{")
            self.scalars.append((var, _Kind.INT))
        else:
            items = ", ".join(str(rng.choice((2, 4, 8))) for _ in range(rng.randint(0, 3)))
            self.emit(f"for {var} in [{items}] {{")
            self.scalars.append((var, _Kind.INT))
        self.nested()

    def repeat(self) -> None:
        var = f" as {self.fresh('r')}" if self.chance(0.3) else ""
        self.emit(f"repeat {self.count()}{var} {{")
        self.nested()

    def condition(self) -> None:
        self.emit(f"if {self.bool_expr()} {{")
        self.nested(close=False)
        if self.chance(0.3):
            self.emit(f"}} elif {self.bool_expr()} {{")
            self.nested(close=False)
        if self.chance(0.5):
            self.emit("} else {")
            self.nested(close=False)
        self.emit("}")

    def nested(self, close: bool = True) -> None:
        """A body. The language has no block scope, but a branch or a loop that does not
        run binds nothing: its names are not used after it."""
        self.depth += 1
        tensors, scalars, layers = len(self.tensors), len(self.scalars), len(self.layers)
        for _ in range(self.rng.randint(1, 3)):
            self.statement()
        del self.tensors[tensors:], self.scalars[scalars:], self.layers[layers:]
        self.depth -= 1
        if close:
            self.emit("}")

    def count(self) -> str:
        if self.odd(0.2):
            return self.rng.choice(("-1", "2.5", '"two"', "true", "N", "1000001", "x"))
        ints = [n for n, k in self.scalars if k is _Kind.INT]
        if ints and self.chance(0.1):
            return f"min({self.rng.choice(ints)}, 3)"
        return str(self.rng.randint(0, 3))

    def outputs(self) -> None:
        if self.odd(0.05):
            return  # no output at all
        count = 1 if self.chance(0.8) else 2
        for k in range(count):
            source = self.tensors[-1] if k == 0 else self.rng.choice(self.tensors)
            expr = source.name if self.chance(0.6) else self.tensor_expr(source)[0]
            # Several outputs must be named; a single one may be anonymous.
            named = f"{self.fresh('y')} = " if count > 1 or self.chance(0.8) else ""
            self.emit(" ".join([*self.annotations(0.05), f"out {named}{expr}"]))

    # --- expressions --------------------------------------------------------------

    def tensor_expr(self, source: _Tensor) -> tuple[str, int]:
        """A tensor expression from `source`, and its likely rank."""
        rng = self.rng
        roll = rng.random()
        same = [t for t in self.tensors if t.rank == source.rank]
        if roll < 0.5:
            return self.pipeline(source)
        if roll < 0.6:  # a residual, or a scaling
            if self.chance(0.25):
                return self.scalar_operand(source)
            other = rng.choice(same)
            expr, _ = self.pipeline(source, keep_rank=True)
            return f"{other.name} {rng.choice('++-*/')} ({expr})", source.rank
        if roll < 0.65:
            if self.chance(0.4):
                return self.made_operand(source)
            if self.chance(0.6):
                return self.scalar_operand(source)
            number = rng.choice(("1e308", "-1", "0", "N")) if self.odd(0.3) else "0.5"
            return f"{source.name} * {number}", source.rank
        if roll < 0.7:
            return self.joined_or_selected(source, same)
        if roll < 0.8 and self.blocks:
            return self.block_call(source)
        if roll < 0.88 and self.layers:
            layer, rank = rng.choice(self.layers)
            return (
                f"{source.name} -> {layer}" if self.chance(0.5) else f"{layer}({source.name})"
            ), rank
        if roll < 0.94:
            first, rank = self.pipeline(source, keep_rank=True)
            second = rng.choice(same).name
            return f"if {self.bool_expr()} {{ {first} }} else {{ {second} }}", rank
        op = self.pick_op(source.rank)
        args = ", ".join(filter(None, (source.name, self.op_args(op))))
        return f"{op.name}({args})", op.out_rank

    def joined_or_selected(self, source: _Tensor, same: list[_Tensor]) -> tuple[str, int]:
        """`source` joined with tensors of its rank (concat, stack; as arguments or as a
        list), or chosen from elementwise by a comparison (where, masked_fill), or the
        comparison itself (a bool tensor)."""
        rng = self.rng
        # `source` itself among the others half the time: a join of equal shapes compiles.
        joined = [source] * 2 if self.chance(0.5) else rng.sample(same, min(2, len(same)))
        names = ", ".join([source.name, *(t.name for t in joined)])
        axis = rng.randint(-source.rank, source.rank) if self.faulty else -1
        form = rng.random()
        if form < 0.3:
            return f"concat({names}, axis={axis})", source.rank
        if form < 0.45:
            return f"concat([{names}], axis={axis})", source.rank
        if form < 0.6:
            return f"stack([{names}], axis={axis})", source.rank + 1
        other = rng.choice([source.name, *(t.name for t in same), "0", "0.5", "N"])
        condition = f"{source.name} {rng.choice(('==', '!=', '<', '<=', '>', '>='))} {other}"
        if form < 0.75 and other in (t.name for t in same):
            return f"where({condition}, {source.name}, {other})", source.rank
        if form < 0.95:
            value = rng.choice(('"-inf"', '"inf"', "0.0", "-1.5", "1e30", "-0.0"))
            return f"masked_fill({source.name}, {condition}, {value})", source.rank
        return f"({condition})", source.rank

    def made_operand(self, source: _Tensor) -> tuple[str, int]:
        """`source` with a tensor made from sizes (zeros, full, a learned parameter...):
        sizes of 1 broadcast over any of source's; N, at axis 0, is its batch size."""
        rng = self.rng
        dims = ["1"] * rng.randint(0, source.rank)
        symbolic = len(dims) == source.rank > 0 and self.chance(0.3)
        if symbolic:
            dims[0] = "N"  # read from the tensor in scope that has it, at run time
        shape = f"[{', '.join(dims)}]"
        made = [f"zeros({shape})", f"ones({shape})", f"full({shape}, -2.5)"]
        if not symbolic:
            made.append(f"parameter({shape}, value=0.5)")
        if source.rank >= 2 and not symbolic:
            made += ["eye(1)", "tril(ones([1, 1]))"]
        if source.rank >= 1 and not symbolic:
            made.append('arange(1, dtype="float32")')
        return f"{source.name} {rng.choice('+-*')} {rng.choice(made)}", source.rank

    def scalar_operand(self, source: _Tensor) -> tuple[str, int]:
        """`source` with a compile-time number (`32 ** -0.5`, `sqrt(2.0)`) or a size read
        at run time (N, `size(x, 0)`: every generated input has N at axis 0), or raised
        to a power when an op takes `**` on tensors."""
        rng = self.rng
        name = source.name
        if "**" in operators() and self.chance(0.2):
            return f"{name} ** {rng.choice(('2', '3', '0.5', '-1', '2 ** -1'))}", source.rank
        operand = rng.choice(
            (
                "32 ** -0.5",
                "-2 ** 2",
                "2 ** 3 ** -1",
                "sqrt(2.0)",
                "exp(-1)",
                "log(2)",
                "float(round(2.5))",
                "abs(-0.5)",
                "N",
                "(N + 1)",
                "(2 * N - 1)",
                f"size({name}, 0)",
                f"size({name}, -1)",
            )
        )
        return f"{name} {rng.choice('*/+-')} {operand}", source.rank

    def block_call(self, source: _Tensor) -> tuple[str, int]:
        block = self.rng.choice(self.blocks)
        args = self.block_args(block)
        if block.inputs == 1 and self.chance(0.7):
            return f"{source.name} -> {block.name}({args})", block.rank
        tensors = [source.name, *(t.name for t in self.tensors[1 : block.inputs])]
        return f"{block.name}({', '.join(filter(None, [*tensors, args]))})", block.rank

    def pipeline(self, source: _Tensor, keep_rank: bool = False) -> tuple[str, int]:
        parts, rank = [source.name], source.rank
        for _ in range(self.rng.randint(1, 3)):
            op = self.pick_op(rank, keep_rank)
            args = self.op_args(op)
            parts.append(f"{op.name}({args})" if args or self.chance(0.3) else op.name)
            rank = op.out_rank
        return " -> ".join(parts), rank

    def pick_op(self, rank: int, keep_rank: bool = False) -> OpProfile:
        if self.odd(0.15):
            return self.rng.choice(self.all_ops)
        fitting = [
            p for p in self.plain_ops if p.rank == rank and (p.out_rank == rank or not keep_rank)
        ]
        return self.rng.choice(fitting or self.plain_ops)

    def op_args(self, op: OpProfile) -> str:
        """The example's arguments; in a faulty spec, sometimes random ones instead."""
        if not self.odd(0.3):
            return op.args
        rng = self.rng
        parts = []
        for name, annotation in op.fields:
            if self.chance(0.5):
                key = rng.choice(op.aliases) if op.aliases and self.chance(0.2) else name
                parts.append(f"{key}={self.attr_value(name, annotation, op.rank)}")
        if self.chance(0.1):
            parts.append(f"{rng.choice(('bogus', 'kernel', 'stride', 'p'))}=1")
        if self.chance(0.1):
            parts.insert(0, rng.choice(NUMBERS))
        return ", ".join(parts)

    def attr_value(self, field: str, annotation: Any, rank: int) -> str:
        if self.chance(0.3):  # implausible on purpose
            return self.rng.choice([*NUMBERS, *STRINGS, "[]", "[1, [2]]", "true", "N", "none"])
        return self.typed_value(annotation, field, rank)

    def typed_value(self, annotation: Any, field: str, rank: int) -> str:
        rng = self.rng
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Literal:
            return repr(rng.choice(args)).replace("'", '"')
        if origin is tuple:
            if field == "dims":
                order = list(range(rank))
                rng.shuffle(order)
                return "[" + ", ".join(map(str, order)) + "]"
            count = rng.choice((1, 2, max(1, rank - 2)))
            return "[" + ", ".join(str(rng.randint(0, 3)) for _ in range(count)) + "]"
        if origin is not None:  # a union: one of its members
            members = [a for a in args if a is not type(None)]
            return self.typed_value(rng.choice(members), field, rank)
        if annotation is bool:
            return rng.choice(("true", "false"))
        if annotation is float:
            return rng.choice(("0.1", "0.5", "1e-5", "0.0", "2.0"))
        if annotation is int:
            if "axis" in field or field.startswith("dim"):
                return str(rng.randint(-rank, rank - 1))
            return str(rng.choice((1, 2, 3, 4, 8, 16)))
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            return str(rng.choice([m.value for m in annotation]))
        return self.scalar(_Kind.INT)

    def block_args(self, block: _BlockSig) -> str:
        parts = [self.scalar(kind) for _, kind in block.params if self.chance(0.7)]
        if self.odd(0.1):
            parts.append("unknown=1")
        return ", ".join(parts)

    def scalar(self, kind: _Kind, own: str = "") -> str:
        """A value of `kind`: a literal, or a scalar in scope (never `own`, the parameter
        whose default this is)."""
        rng = self.rng
        names = [n for n, k in self.scalars if k is kind and n != own]
        if self.odd(0.1):
            return rng.choice([*NUMBERS, *STRINGS, "[1, 2]", "x.shape[1]", "len([1])", own or "q"])
        if names and self.chance(0.3):
            return rng.choice(names)
        if kind is _Kind.INT:
            return rng.choice(
                ("1", "2", "3", "4", "8", "16", "min(2, 3)", "max(1, 4)", "2 * 4", "2 ** 3",
                 "int(sqrt(16))", "round(2.5)", "ceil(1.5)", "floor(7 / 2)", "abs(-2)")
            )  # fmt: skip
        if kind is _Kind.FLOAT:
            return rng.choice(("0.1", "0.5", "1.0", "1e-5", "2 ** -1", "exp(-1)", "log(2)"))
        if kind is _Kind.STR:
            return rng.choice(('"relu"', '"gelu"', '""', '"a\\"b"', '"\\n"', '"é🙂"'))
        return rng.choice(("true", "false"))

    def bool_expr(self) -> str:
        if self.odd(0.1):
            return self.rng.choice(("1", '"yes"', "N == 2", "x", "none"))
        ints = [n for n, k in self.scalars if k is _Kind.INT]
        tensor = self.rng.choice(self.tensors).name
        left = self.rng.choice([*ints, f"{tensor}.rank", f"len({tensor}.shape)", "len([1, 2])"])
        text = f"{left} {self.rng.choice(('==', '!=', '<', '>=', '<='))} {self.rng.randint(0, 4)}"
        if self.chance(0.2):
            text = f"not {text}" if self.chance(0.5) else f"{text} and true"
        return text
