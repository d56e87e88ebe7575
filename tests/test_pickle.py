"""Modules from `prog.torch()` pickle whole: `pickle` and `torch.save`/`torch.load`
(weights_only=False) give back a module computing exactly what the original does, in
this process and in a fresh one that has only dslnet, not the spec."""

from __future__ import annotations

import copy
import gc
import io
import linecache
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

import dslnet
from dslnet.testing import input_symbols, random_inputs

if TYPE_CHECKING:
    from conftest import SpecNetwork

SMALL = """\
block Hidden(width) {
    in x: [N, D]
    out y = x -> linear(width) -> relu
}

network Net() {
    in x: float32[N, 4]
    out y = x -> Hidden(8) -> linear(2)
}
"""


def _outputs(module: Any, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        out = module(*inputs)
    return [out] if isinstance(out, torch.Tensor) else list(out)


def _assert_equal(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape
        assert torch.equal(g, e)


def _torch_round_trip(module: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_every_network_round_trips_through_pickle_and_torch_save(
    spec_network: SpecNetwork,
) -> None:
    prog, params = spec_network.program(small=True), spec_network.params(small=True)
    graph = prog.ir(spec_network.name, **params)
    torch.manual_seed(0)
    module = prog.torch(spec_network.name, **params).eval()
    env = dict.fromkeys(input_symbols(graph), 2)
    inputs = [torch.from_numpy(a) for a in random_inputs(graph, env).values()]
    expected = _outputs(module, inputs)
    for copied in (
        pickle.loads(pickle.dumps(module)),
        _torch_round_trip(module),
        copy.deepcopy(module),
    ):
        assert type(copied) is type(module)
        assert not copied.training
        assert list(copied.state_dict()) == list(module.state_dict())
        _assert_equal(_outputs(copied, inputs), expected)


def test_a_module_unpickles_after_its_original_is_gone() -> None:
    """No live namespace of the source: unpickling executes the source it carries."""
    module = dslnet.loads(SMALL).torch("Net").eval()
    x = torch.randn(3, 4)
    expected = _outputs(module, [x])
    data = pickle.dumps(module)
    del module
    gc.collect()
    before = _sources()
    loaded = pickle.loads(data)
    _assert_equal(_outputs(loaded, [x]), expected)
    assert type(loaded).__name__ == "Net"
    assert type(loaded).__module__ == "dslnet_generated_Net"
    # The source it executed is in linecache while the module lives, and only then.
    assert _sources() == before + 1
    del loaded
    gc.collect()
    assert _sources() == before


def _sources() -> int:
    return sum(1 for name in linecache.cache if str(name).startswith("<dslnet:"))


def test_a_fresh_process_loads_a_saved_module(tmp_path: Path) -> None:
    module = dslnet.loads(SMALL).torch("Net").eval()
    x = torch.randn(3, 4)
    torch.save(module, tmp_path / "net.pt")
    torch.save({"x": x, "y": _outputs(module, [x])[0]}, tmp_path / "io.pt")
    script = textwrap.dedent(
        """
        import sys
        import torch
        module = torch.load(sys.argv[1], weights_only=False)
        io = torch.load(sys.argv[2])
        with torch.no_grad():
            assert torch.equal(module(io["x"]), io["y"])
        print(type(module).__name__, "equal")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "net.pt"), str(tmp_path / "io.pt")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Net equal"


def test_a_subclass_of_a_generated_class_pickles_by_reference() -> None:
    """A user's subclass lives in an importable module: pickle's own way applies."""
    base = type(dslnet.loads(SMALL).torch("Net"))
    subclass = type("UserNet", (base,), {"__module__": __name__})
    globals()["UserNet"] = subclass
    try:
        module = subclass().eval()
        x = torch.randn(3, 4)
        loaded = pickle.loads(pickle.dumps(module))
        assert type(loaded) is subclass
        _assert_equal(_outputs(loaded, [x]), _outputs(module, [x]))
    finally:
        del globals()["UserNet"]


def test_the_safe_loaders_never_unpickle_a_whole_module(tmp_path: Path) -> None:
    """A whole module is pickle: the weights readers (weights_only) refuse it."""
    module = dslnet.loads(SMALL).torch("Net")
    torch.save(module, tmp_path / "whole.pt")
    with pytest.raises(dslnet.WeightsError, match=r"weights_only=True"):
        dslnet.loads(SMALL).onnx("Net", weights=str(tmp_path / "whole.pt"))
