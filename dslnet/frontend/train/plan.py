"""A `train` declaration lowered: the typed plan the training runtime runs.

Each step's graph is the declaration's shared statements followed by the step's own,
expanded like a network whose inputs are the data (and noise) and whose outputs are
the loss and the metrics. The networks being trained are the declaration's `layer`s;
every step graph names them by the same module path, so the trainer gives all steps
one set of weights. dslnet.frontend.train.lower builds a plan; dslnet.training runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dslnet.core.diagnostics import Span
from dslnet.core.types import TensorType
from dslnet.frontend.train import settings as fn
from dslnet.frontend.train.noise import Noise
from dslnet.ir.graph import Graph


@dataclass(frozen=True)
class LayerRef:
    """A `layer` of a train declaration: what it instantiates, with which arguments."""

    name: str
    module: str  # its attribute in the step modules
    callee: str
    kind: str  # "network", "block" or "op"
    params: dict[str, Any]  # a network's bound parameters (to export it on its own)
    span: Span
    graph: Graph | None = None  # a network's own IR, for its ONNX model


@dataclass(frozen=True)
class Step:
    name: str
    graph: Graph
    optimizer: fn.Optimizer
    schedule: fn.Schedule | None
    clip_grad_norm: float | None
    update: tuple[str, ...]  # layer names
    times: int
    metrics: tuple[str, ...]  # the graph outputs other than `loss`
    span: Span


@dataclass(frozen=True)
class TrainPlan:
    name: str
    spec_dir: Path | None
    layers: dict[str, LayerRef]
    data_inputs: dict[str, TensorType]
    noise_inputs: dict[str, Noise]  # name -> how it is drawn
    steps: tuple[Step, ...]
    batch_size: int = 32
    epochs: int = 1
    seed: int = 0
    data: str | None = None
    validation: str | None = None
    early_stopping: fn.Patience | None = None
    load_weights: tuple[tuple[str, str], ...] = ()
    quantize: str | None = None
    qat: bool = False
    prune: fn.Iterative | fn.Lottery | None = None
    span: Span = field(default_factory=Span.unknown)

    @property
    def spec_roots(self) -> list[Path]:
        """Where the files the spec names (data, weights) must really be: relative paths
        start at the first, and none may lead out of them (dslnet.training.spec_files checks,
        again on the open file)."""
        return [(self.spec_dir or Path.cwd()).resolve()]
