"""Golden text of the printed IR for every network in specs/ (`pytest --accept` rewrites)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dslnet
from dslnet.ir.printer import print_graph
from dslnet.ir.verifier import verify

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.net"))
GOLDEN = ROOT / "tests" / "golden"


def _cases() -> list[tuple[Path, str]]:
    cases = []
    for spec in SPECS:
        prog = dslnet.load(spec)
        cases += [(spec, name) for name in prog.networks]
    return cases


@pytest.mark.parametrize(("spec", "network"), _cases(), ids=lambda v: getattr(v, "stem", v))
def test_printed_ir_matches_golden(
    spec: Path, network: str, request: pytest.FixtureRequest
) -> None:
    graph = dslnet.load(spec).ir(network)
    verify(graph)
    text = print_graph(graph)
    golden = GOLDEN / spec.stem / f"{network}.ir"
    if request.config.getoption("--accept", default=False):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run pytest --accept"
    assert text == golden.read_text(), f"IR of {network} changed; review and run pytest --accept"


@pytest.mark.parametrize(("spec", "network"), _cases(), ids=lambda v: getattr(v, "stem", v))
def test_generated_torch_matches_golden(
    spec: Path, network: str, request: pytest.FixtureRequest
) -> None:
    source = dslnet.load(spec).torch_source(network)
    compile(source, f"{network}.py", "exec")  # it is valid Python
    golden = GOLDEN / spec.stem / f"{network}.py"
    if request.config.getoption("--accept", default=False):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(source)
    assert golden.exists(), f"no golden file {golden}; run pytest --accept"
    assert source == golden.read_text(), f"code of {network} changed; review, pytest --accept"


def test_every_spec_has_a_network() -> None:
    assert SPECS
    for spec in SPECS:
        assert dslnet.load(spec).networks, spec
