"""Golden text of the printed IR for every network in specs/ (`pytest --accept` rewrites)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import dslnet
from dslnet.ir.printer import print_graph
from dslnet.ir.verifier import verify

if TYPE_CHECKING:
    from conftest import SpecNetwork

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"


def test_printed_ir_matches_golden(
    spec_network: SpecNetwork, request: pytest.FixtureRequest
) -> None:
    network = spec_network.name
    graph = spec_network.graph()
    verify(graph)
    text = print_graph(graph)
    golden = GOLDEN / spec_network.path.stem / f"{network}.ir"
    if request.config.getoption("--accept", default=False):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run pytest --accept"
    assert text == golden.read_text(), f"IR of {network} changed; review and run pytest --accept"


def test_generated_torch_matches_golden(
    spec_network: SpecNetwork, request: pytest.FixtureRequest
) -> None:
    network = spec_network.name
    source = spec_network.program().torch_source(network)
    compile(source, f"{network}.py", "exec")  # it is valid Python
    golden = GOLDEN / spec_network.path.stem / f"{network}.py"
    if request.config.getoption("--accept", default=False):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(source)
    assert golden.exists(), f"no golden file {golden}; run pytest --accept"
    assert source == golden.read_text(), f"code of {network} changed; review, pytest --accept"


def test_every_spec_has_a_network(spec_files: list[Path]) -> None:
    assert spec_files
    for spec in spec_files:
        assert dslnet.load(spec).networks, spec
