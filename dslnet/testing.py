"""Testing helpers: random inputs for a compiled network, and the op conformance check.

Random inputs are what tests, benchmarks and demos feed a network. An input that an
op reads in a declared domain (dslnet.ir.domains) is drawn over it: class labels below
the class count, embedding ids over the whole table, probabilities in [0, 1]. Other
integers are small (valid ids and indices for any table of two rows or more); booleans
are mostly false and never all true along the last axis (a padding mask always leaves
a key to attend to), so every network gets data it accepts.

`check_op` is the test every built-in op passes, for a user's own op in their own test
suite: each of the op's examples compiled, its shape rule and parameters against the
generated torch module, and torch against ONNX Runtime. It raises AssertionError
saying what failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from dslnet.core.types import DType, TensorType
from dslnet.ir.domains import InputDomain, input_domains
from dslnet.ir.graph import Graph
from dslnet.ops import registry
from dslnet.ops.registry import OpDef


def concrete_shape(ttype: TensorType, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The shape with each symbolic dim evaluated at `sizes`."""
    return tuple(d if isinstance(d, int) else d.evaluate(dict(sizes)) for d in ttype.shape)


def random_input(
    ttype: TensorType,
    sizes: Mapping[str, int],
    rng: np.random.Generator,
    domain: InputDomain | None = None,
) -> np.ndarray[Any, Any]:
    """An array of `ttype` at `sizes`; with `domain`, drawn over it (after the plain
    draw, so that the inputs before and after it draw the same either way)."""
    shape = concrete_shape(ttype, sizes)
    value = _plain(ttype, shape, rng)
    if domain is None or ttype.dtype == DType.bool:
        return value
    if domain.kind == "probabilities" and ttype.dtype.is_float:
        return rng.random(shape).astype(ttype.dtype.value)
    if domain.kind == "probabilities":
        return rng.integers(0, 2, shape).astype(ttype.dtype.value)
    if domain.limit is not None and not ttype.dtype.is_float:
        return rng.integers(0, domain.limit, shape).astype(ttype.dtype.value)
    return value


def _plain(
    ttype: TensorType, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    if ttype.dtype.is_float:
        return rng.standard_normal(shape).astype(ttype.dtype.value)
    if ttype.dtype == DType.bool:
        mask = rng.random(shape) < 0.25
        if mask.ndim:  # never all true along the last axis: a padding mask keeps a key
            mask[..., 0] = False
        return mask
    return rng.integers(0, 2, shape).astype(ttype.dtype.value)


def random_feeds(
    graph: Graph, sizes: Mapping[str, int], rng: np.random.Generator
) -> dict[str, np.ndarray[Any, Any]]:
    """One array per network input, in input order, each in the domain the ops reading
    it declare."""
    domains = input_domains(graph)
    return {v: random_input(graph.type_of(v), sizes, rng, domains.get(v)) for v in graph.inputs}


def input_symbols(graph: Graph) -> set[str]:
    """The symbolic dims the network's inputs are declared with (N, T, V...)."""
    return {
        s
        for v in graph.inputs
        for d in graph.type_of(v).shape
        if not isinstance(d, int)
        for s in d.free_symbols()
    }


def random_inputs(
    graph: Graph, sizes: Mapping[str, int], seed: int = 0
) -> dict[str, np.ndarray[Any, Any]]:
    """One array per network input, in input order (`random_feeds`)."""
    return random_feeds(graph, sizes, np.random.default_rng(seed))


def torch_outputs(
    graph: Graph, weights: Mapping[str, np.ndarray[Any, Any]], feeds: Mapping[str, Any]
) -> list[np.ndarray[Any, Any]]:
    """The generated module's outputs (eval mode) with these weights, as arrays."""
    import torch

    from dslnet.backends.torch_codegen import build_module

    module = build_module(graph)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
    module.eval()
    with torch.no_grad():
        out = module(*(torch.from_numpy(feeds[v]) for v in graph.inputs))
    return [t.numpy() for t in ([out] if isinstance(out, torch.Tensor) else out)]


def assert_close(
    got: list[np.ndarray[Any, Any]], want: list[np.ndarray[Any, Any]], tol: float = 1e-4
) -> None:
    """Each output within `tol`, relative to its largest magnitude when that is over 1."""
    for g, w in zip(got, want, strict=True):
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, atol=tol * scale, rtol=0)


# --- op conformance ---------------------------------------------------------------------

DEFAULT_SIZES: tuple[Mapping[str, int], ...] = (
    {"N": 1, "T": 2, "C": 3, "H": 4, "W": 5, "V": 4},
    {"N": 3, "T": 5, "C": 2, "H": 6, "W": 3, "V": 7},
)
"""Values for the symbolic dims examples use (N batch, T time, C channels, H and W
height and width, V nodes); each example runs once per mapping."""

OpRef = str | OpDef | type[OpDef]


def check_op(
    op: OpRef, sizes: Sequence[Mapping[str, int]] = DEFAULT_SIZES, *, tol: float = 1e-4
) -> None:
    """Check a registered op the way every built-in op is checked.

    Its facets first (a shape rule, torch and ONNX lowerings, an init for parameters,
    examples), then each example spec body (`op.examples`) through `check_example`.
    Raises AssertionError naming the op, the example and what failed.

    Args:
        op: the op's name, its OpDef instance or its class (which must be registered).
        sizes: values for the examples' symbolic dims; each example runs at each.
        tol: the largest torch vs ONNX Runtime difference allowed, relative to an
            output's largest magnitude when that is over 1.
    """
    opdef = _registered(op)
    check_facets(opdef)
    for index in range(len(opdef.examples)):
        check_example(opdef, index, sizes, tol=tol)


def check_facets(op: OpRef) -> None:
    """Everything a complete op defines is there, examples included."""
    from dslnet.ops.userops import definition_problems

    opdef = _registered(op)
    problems = definition_problems(type(opdef))
    if not opdef.examples:
        problems.append(
            "it has no examples: add spec bodies that use it (e.g. examples = "
            f'("in x: float32[N, 8]\\nout y = {opdef.name}(x)",)); they are what is run'
        )
    if problems:
        raise AssertionError(f"op '{opdef.name}': " + "; ".join(problems))


def check_example(
    op: OpRef,
    example: int | str,
    sizes: Sequence[Mapping[str, int]] = DEFAULT_SIZES,
    *,
    tol: float = 1e-4,
) -> None:
    """One example (an index into `op.examples`, or a spec body of your own) through
    the compiler: it compiles, calls the op and verifies; the generated torch module
    has the parameters and buffers the op declares, and `init_param` draws them; at
    each of `sizes` the torch outputs have the types the shape rule inferred; the ONNX
    model passes the checker; and ONNX Runtime gives torch's values within `tol`.
    """
    opdef = _registered(op)
    body = opdef.examples[example] if isinstance(example, int) else example
    shown = "; ".join(body.splitlines())
    number = f" {example}" if isinstance(example, int) else ""
    where = f"op '{opdef.name}', example{number} ({shown})"
    graph, module = _compile(opdef, body, where)
    _check_parameters(graph, module, where)
    needed = input_symbols(graph)
    rng = np.random.default_rng(0)
    runs = []  # torch first: a wrong shape rule reads as one, not as an ONNX error
    for env in sizes:
        missing = sorted(needed - set(env))
        if missing:
            raise AssertionError(
                f"{where}: sizes {dict(env)} give no value for {', '.join(missing)}; pass "
                f"sizes= with them"
            )
        feeds = random_feeds(graph, env, rng)
        outputs = _torch_outputs(graph, module, feeds, env, f"{where} at {dict(env)}")
        runs.append((env, feeds, outputs))
    model = _onnx_model(graph, module, where)
    for env, feeds, outputs in runs:
        _compare_with_onnx_runtime(graph, model, feeds, outputs, tol, f"{where} at {dict(env)}")


def _registered(op: OpRef) -> OpDef:
    name = op if isinstance(op, str) else getattr(op, "name", None)
    found = registry.get(name) if isinstance(name, str) else None
    if found is None or name is None:
        raise AssertionError(f"{op!r} is not a registered op: decorate its class with @register")
    cls = op if isinstance(op, type) else type(op)
    if not isinstance(op, str) and type(found) is not cls:
        raise AssertionError(f"op '{name}' is registered by {registry.origin(name)}, not {op!r}")
    return found


@contextmanager
def _step(where: str, what: str) -> Iterator[None]:
    """An exception in this step, as an AssertionError that says which step failed."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as err:
        raise AssertionError(f"{where}: {what} failed: {type(err).__name__}: {err}") from err


def _compile(opdef: OpDef, body: str, where: str) -> tuple[Graph, Any]:
    import dslnet
    from dslnet.backends.torch_codegen import build_module
    from dslnet.ir.verifier import verify

    indented = "\n".join("    " + line for line in body.splitlines())
    text = f"network OpExample() {{\n{indented}\n}}\n"
    try:
        graph = dslnet.loads(text, filename=f"{opdef.name}.net").ir("OpExample")
    except dslnet.CompileError as err:
        raise AssertionError(f"{where} does not compile:\n{err.render()}") from None
    if not any(node.op == opdef.name for node in graph.nodes):
        raise AssertionError(f"{where} does not call {opdef.name}")
    with _step(where, "the IR verifier (re-running the shape rule)"):
        verify(graph)
    with _step(where, "building the torch module from the generated source"):
        module = build_module(graph).eval()
    return graph, module


def _check_parameters(graph: Graph, module: Any, where: str) -> None:
    """The module's state is what params()/buffers() declare, and takes init_param's."""
    from dslnet.ir.weights import init_weights

    declared = {name: p.shape for name, p in graph.parameters.items()}
    actual = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    if declared != actual:
        problems = [f"{n}: declared, not in the torch module" for n in declared.keys() - actual]
        problems += [f"{n}: in the torch module, not declared" for n in actual.keys() - declared]
        problems += [
            f"{n}: torch {actual[n]}, declared {declared[n]}"
            for n in declared.keys() & actual.keys()
            if actual[n] != declared[n]
        ]
        raise AssertionError(
            f"{where}: the torch module's parameters and buffers differ from what the op's "
            f"params()/buffers() declare: " + "; ".join(sorted(problems))
        )
    learned = sum(p.numel() for p in module.parameters())
    if learned != graph.num_parameters:
        raise AssertionError(
            f"{where}: the torch module learns {learned} values, the op declares "
            f"{graph.num_parameters} (is a buffer declared as a parameter, or the reverse?)"
        )
    with _step(where, "drawing fresh weights with init_param"):
        fresh = init_weights(graph)
    for name, value in fresh.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise AssertionError(f"{where}: init_param drew non-finite values for {name}")


def _onnx_model(graph: Graph, module: Any, where: str) -> Any:
    import onnx

    from dslnet.backends.onnx_emit import emit_onnx

    with _step(where, "emitting ONNX (the op's onnx lowering)"):
        model = emit_onnx(graph, module.state_dict())
    with _step(where, "the ONNX checker"):
        onnx.checker.check_model(model, full_check=True)
    return model


def _torch_outputs(
    graph: Graph,
    module: Any,
    feeds: Mapping[str, np.ndarray[Any, Any]],
    env: Mapping[str, int],
    where: str,
) -> list[np.ndarray[Any, Any]]:
    """The module's outputs, each checked against the type the shape rule inferred."""
    import torch

    with _step(where, "running the torch module"), torch.no_grad():
        out = module(*(torch.from_numpy(feeds[v]) for v in graph.inputs))
    outputs = [out] if isinstance(out, torch.Tensor) else list(out)
    if len(outputs) != len(graph.outputs):
        raise AssertionError(
            f"{where}: the torch module returns {len(outputs)} outputs, the network has "
            f"{len(graph.outputs)}"
        )
    for (out_name, value), got in zip(graph.outputs, outputs):
        inferred = graph.type_of(value)
        shape = concrete_shape(inferred, env)
        if tuple(got.shape) != shape or str(got.dtype) != f"torch.{inferred.dtype.value}":
            raise AssertionError(
                f"{where}: output '{out_name}' from torch is "
                f"{str(got.dtype).removeprefix('torch.')}{list(got.shape)}, the shape rule "
                f"says {inferred} = {inferred.dtype.value}{list(shape)}"
            )
    # detach: a view of a weight (an expanded parameter) keeps requires_grad under no_grad
    return [got.detach().numpy() for got in outputs]


def _compare_with_onnx_runtime(
    graph: Graph,
    model: Any,
    feeds: Mapping[str, np.ndarray[Any, Any]],
    outputs: Sequence[np.ndarray[Any, Any]],
    tol: float,
    where: str,
) -> None:
    from dslnet.backends.onnx_emit import run_onnx

    with _step(where, "running the ONNX model in ONNX Runtime"):
        theirs = run_onnx(model, feeds)
    for (out_name, _), ours in zip(graph.outputs, outputs):
        _assert_same_values(ours, theirs[out_name], tol, f"{where}: output '{out_name}'")


def _assert_same_values(
    torch_value: np.ndarray[Any, Any], ort_value: np.ndarray[Any, Any], tol: float, where: str
) -> None:
    if ort_value.shape != torch_value.shape:
        raise AssertionError(
            f"{where} is {list(ort_value.shape)} in ONNX Runtime, {list(torch_value.shape)} "
            f"in torch"
        )
    if not torch_value.size:
        return
    ref, other = torch_value.astype(np.float64), ort_value.astype(np.float64)
    # Infinities (a masked_fill of -inf) and NaNs must sit at the same places with the
    # same value; the finite values are compared within the tolerance.
    unequal = ~np.isfinite(ref) & (ref != other) & ~(np.isnan(ref) & np.isnan(other))
    if unequal.any():
        index = tuple(int(i) for i in np.argwhere(unequal)[0])
        raise AssertionError(
            f"{where} differs between torch and ONNX Runtime at index {list(index)} "
            f"(torch {ref[index]:.6g}, ONNX Runtime {other[index]:.6g})"
        )
    finite = np.isfinite(ref)
    ref, other = np.where(finite, ref, 0.0), np.where(finite, other, 0.0)
    scale = max(1.0, float(np.abs(ref).max()))
    diff = np.abs(other - ref)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    if not diff[worst] <= tol * scale:  # NaN fails too
        raise AssertionError(
            f"{where} differs between torch and ONNX Runtime by {diff[worst]:.3g} at index "
            f"{list(map(int, worst))} (torch {ref[worst]:.6g}, ONNX Runtime "
            f"{other[worst]:.6g}); allowed {tol:g} x {scale:.3g}"
        )
