"""Running a train plan: the loop `dslnet train` runs, usable from Python too.

Every step of the plan is a generated module whose layers are the same module
objects, so a discriminator step and a generator step train one pair of networks.
Everything a run depends on is either saved in its checkpoint (weights, optimizer
and schedule state, random generators) or a function of the seed and the epoch (the
order of the samples), which is what makes a resumed run end where an uninterrupted
one does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dslnet.backends.torch_codegen import build_module
from dslnet.frontend.train.plan import Step, TrainPlan
from dslnet.ir.oplookup import resolve_op
from dslnet.training import checkpoint
from dslnet.training import data as datasets
from dslnet.training.distributed import Distributed, average_gradients, share
from dslnet.training.dropout import MaskSource, share_dropout
from dslnet.training.errors import TrainError
from dslnet.training.optim import (
    Scheduler,
    make_optimizer,
    make_scheduler,
    metric_mode,
)
from dslnet.training.spec_files import spec_file
from dslnet.training.syncbn import sync_batchnorm
from dslnet.training.transfer import load_weights_into

Log = Callable[[str], None]


@dataclass
class StepRuntime:
    plan: Step
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    params: list[nn.Parameter] = field(default_factory=list)


class Trainer:
    """Trains the layers of `plan` on `data`: arrays by input name, a map-style torch
    Dataset (items: dicts by input name or tuples in input order), a DataLoader, or,
    when None, a generated task of `samples` samples."""

    def __init__(
        self,
        plan: TrainPlan,
        data: Any = None,
        *,
        samples: int = 1024,
        epochs: int | None = None,
        log: Log | None = None,
        progress: bool | None = False,
        distributed: Distributed | None = None,
        after_step: Callable[[], None] | None = None,
        after_epoch: Callable[[Trainer], None] | None = None,
        device: str | torch.device = "cpu",
        validation: Any = None,
    ) -> None:
        self.plan = plan
        self.device = resolve_device(device)
        self.epochs = plan.epochs if epochs is None else epochs
        self.log = log or (lambda _: None)
        self.progress = progress
        self.dist = distributed
        self.after_step = after_step  # e.g. keeping pruned weights at zero
        self.after_epoch = after_epoch  # e.g. writing the metrics log
        self.qat: dict[str, Any] = {}  # layer -> QatHandle: its ranges go in checkpoints
        graphs = [s.graph for s in plan.steps]
        if data is None:
            data = datasets.synthetic(plan.data_inputs, graphs, samples, plan.seed)
        self.source = datasets.source_of(data, plan.data_inputs)
        if self.dist is not None and isinstance(self.source, datasets.LoaderSource):
            raise TrainError(
                "a DataLoader cannot be split over processes here: give a Dataset (the "
                "trainer shards each global batch)"
            )
        self.check_batch()
        # Held-out data (same forms as `data`): its loss and metrics, `val_...`, are
        # measured after every epoch in eval mode; early stopping may watch them.
        self.validation = None
        if validation is not None:
            self.validation = datasets.source_of(validation, plan.data_inputs, "validation")
        for source, what in ((self.source, "training"), (self.validation, "validation")):
            if isinstance(source, datasets.ArraySource):  # labels in range before any step
                datasets.check_indices(source.arrays, plan.data_inputs, graphs, f"the {what} data")
        torch.manual_seed(plan.seed)
        self.layers = nn.ModuleDict()
        modules = [self.step_module(s) for s in plan.steps]
        self.noise_gen = torch.Generator().manual_seed(plan.seed + 1)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []  # one record an epoch
        self.losses: list[tuple[str, float]] = []  # (step, loss) of every optimizer step
        # The epoch under way: batches done, running sums and counts, seconds spent.
        self.position = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.seconds = 0.0
        self.best: float | None = None
        self.stale = 0  # epochs without improvement, for early stopping
        self.stopped_early = False
        for layer, file in plan.load_weights:  # transfer learning, before any optimizer
            self.load_layer_weights(layer, spec_file(plan, file), plan.spec_roots)
        for module in modules:  # the shared layers move once, with the first
            module.to(self.device)
        if self.dist is not None:  # normalise over the global batch, as one process does
            for module in modules:
                sync_batchnorm(module)
        # Dropout masks for the global batch: the same in any number of processes.
        rank, world = (self.dist.rank, self.dist.world) if self.dist else (0, 1)
        self.masks = MaskSource(plan.seed + 3, self.device, rank, world)
        for module in modules:
            share_dropout(module, self.masks)
        self.runtimes = [self.runtime(s, m) for s, m in zip(plan.steps, modules)]

    def load_layer_weights(self, path: str, file: Path, roots: list[Path] | None = None) -> None:
        """Load `file` (safetensors or .pt, keyed as the module's own state_dict) into the
        layer or sub-block at `path` (`net.backbone`): transfer learning. With `roots`,
        the file must really lie below one of them."""
        head, _, rest = path.partition(".")
        ref = self.plan.layers.get(head)
        if ref is None or ref.module not in self.layers:
            raise TrainError(f"load_weights: '{head}' is not a layer of '{self.plan.name}'")
        try:
            layer = self.layers[ref.module]
            module = layer.get_submodule(rest) if rest else layer
        except AttributeError:
            raise TrainError(f"load_weights: '{path}' names no sub-block") from None
        load_weights_into(module, path, file, roots)

    # --- building -----------------------------------------------------------------------

    def step_module(self, step: Step) -> nn.Module:
        """The step's generated module, its layers replaced by the shared ones."""
        module: nn.Module = build_module(step.graph)
        for ref in self.plan.layers.values():
            own = getattr(module, ref.module, None)
            if own is None:
                continue
            if ref.module in self.layers:
                setattr(module, ref.module, self.layers[ref.module])
            else:
                self.layers[ref.module] = own
        return module

    def runtime(self, step: Step, module: nn.Module) -> StepRuntime:
        named = [
            (f"{self.plan.layers[name].module}.{n}", p)
            for name in step.update
            if self.plan.layers[name].module in self.layers
            for n, p in self.layers[self.plan.layers[name].module].named_parameters()
        ]
        optimizer = make_optimizer(step.optimizer, named, step.name)
        iterations = self.epochs * self.batches_per_epoch() * step.times
        scheduler = make_scheduler(step.schedule, optimizer, iterations)
        params = [p for _, p in named if p.requires_grad]
        return StepRuntime(step, module, optimizer, scheduler, params)

    def rebuild(self) -> None:
        """New optimizers over the layers as they are now (after pruning replaced one)."""
        for rt in self.runtimes:
            for ref in self.plan.layers.values():
                if hasattr(rt.module, ref.module) and ref.module in self.layers:
                    setattr(rt.module, ref.module, self.layers[ref.module])
        self.runtimes = [self.runtime(rt.plan, rt.module) for rt in self.runtimes]

    def check_batch(self) -> None:
        world = self.dist.world if self.dist else 1
        if self.plan.batch_size % world:
            raise TrainError(
                f"batch_size {self.plan.batch_size} does not split evenly over {world} processes"
            )

    def batches_per_epoch(self) -> int:
        return self.source.batch_count(self.plan.batch_size)

    # --- the loop -------------------------------------------------------------------------

    def fit(
        self,
        epochs: int | None = None,
        checkpoint_to: Path | None = None,
        every: int | None = None,
    ) -> list[dict[str, float]]:
        """Train until `epochs` (default: the plan's) are complete or early stopping
        ends it; a checkpoint after every epoch when `checkpoint_to` is given, and
        also after every `every` batches."""
        end = self.epochs if epochs is None else self.epoch + epochs
        while self.epoch < end and not self.stopped_early:
            record = self.run_epoch(end, checkpoint_to, every)
            if self.validation is not None:  # beside the training metrics, before lr
                lr, seconds = record.pop("lr"), record.pop("seconds")
                record.update(self.evaluate(self.validation))
                record.update(lr=lr, seconds=seconds)
            self.history.append(record)
            self.epoch += 1
            self.log(_describe(record, end))
            self.step_epoch_schedules(record)
            self.check_early_stopping(record)
            if checkpoint_to is not None and self.is_main:
                self.save(checkpoint_to)
            if self.after_epoch is not None and self.is_main:
                self.after_epoch(self)
        return self.history

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.rank == 0

    def run_epoch(
        self, end: int, checkpoint_to: Path | None = None, every: int | None = None
    ) -> dict[str, float]:
        """The epoch `self.epoch`, from batch `self.position` on (a resumed one)."""
        from dslnet.core.console import progress

        began = time.perf_counter() - self.seconds
        size_of_batch, seed = self.plan.batch_size, self.plan.seed
        batches = self.source.batches(size_of_batch, seed, self.epoch, self.position)
        for rt in self.runtimes:
            train_mode(rt)
        sums, counts = self.sums, self.counts

        def status() -> str:
            return "  ".join(f"{k} {sums[k] / counts[k]:.4f}" for k in sums)

        shown = progress(
            batches,
            f"epoch {self.epoch + 1}/{end}",
            total=self.source.batch_count(size_of_batch) - self.position,
            enabled=self.progress if self.is_main else False,
            status=status,
        )
        for batch in shown:
            size = len(next(iter(batch.values())))
            feed = {name: t[self.shard(size)].to(self.device) for name, t in batch.items()}
            for rt in self.runtimes:
                for _ in range(rt.plan.times):
                    values = self.train_step(rt, feed, size)
                    for key, value in values.items():
                        sums[key] = sums.get(key, 0.0) + value * size
                        counts[key] = counts.get(key, 0) + size
            self.position += 1
            if every and checkpoint_to is not None and self.position % every == 0:
                self.seconds = time.perf_counter() - began
                if self.is_main:
                    self.save(checkpoint_to)
        record = {"epoch": self.epoch + 1, **{k: sums[k] / counts[k] for k in sums}}
        record["lr"] = self.runtimes[0].optimizer.param_groups[0]["lr"]
        record["seconds"] = time.perf_counter() - began
        self.position, self.sums, self.counts, self.seconds = 0, {}, {}, 0.0
        return record

    @torch.no_grad()
    def evaluate(self, source: datasets.Source) -> dict[str, float]:
        """Every step's loss and metrics over `source`, in eval mode (dropout off,
        batchnorm's running statistics), as `val_...`; noise drawn the same each time."""
        generator = torch.Generator().manual_seed(self.plan.seed + 2)
        sums: dict[str, float] = {}
        count = 0
        for rt in self.runtimes:
            rt.module.eval()
        for batch in source.batches(self.plan.batch_size, 0, 0, shuffle=False):
            size = len(next(iter(batch.values())))
            drawn = datasets.noise(self.plan.noise_inputs, self.noise_types(), size, generator)
            inputs = {n: t.to(self.device) for n, t in {**batch, **dict(drawn)}.items()}
            for rt in self.runtimes:
                prefix = "val_" if len(self.runtimes) == 1 else f"val_{rt.plan.name}_"
                for key, value in self.outputs(rt, inputs).items():
                    sums[prefix + key] = sums.get(prefix + key, 0.0) + float(value) * size
            count += size
        for rt in self.runtimes:
            train_mode(rt)
        return {key: total / max(count, 1) for key, total in sums.items()}

    def outputs(self, rt: StepRuntime, inputs: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The step module's loss and metrics by name."""
        outputs = rt.module(**inputs)
        names = ("loss", *rt.plan.metrics)
        return dict(zip(names, outputs)) if isinstance(outputs, tuple) else {"loss": outputs}

    def shard(self, size: int) -> slice:
        """This process's rows of a global batch of `size`."""
        if self.dist is None:
            return slice(0, size)
        return share(size, self.dist.rank, self.dist.world)

    def train_step(
        self, rt: StepRuntime, feed: dict[str, torch.Tensor], batch: int
    ) -> dict[str, float]:
        """One optimizer step of `rt`; its loss and metrics, averaged over all processes."""
        drawn = dict(
            datasets.noise(self.plan.noise_inputs, self.noise_types(), batch, self.noise_gen)
        )
        # Drawn on the CPU for the whole global batch: the same values on any device
        # and in any number of processes.
        rows = self.shard(batch)
        noise = {n: t[rows].to(self.device) for n, t in drawn.items()}
        local = rows.stop - rows.start
        self.masks.local_batch, self.masks.batch, self.masks.offset = local, batch, rows.start
        weight = local / batch  # this process's part of the global batch's mean
        inputs = {**feed, **noise}
        rt.optimizer.zero_grad(set_to_none=True)
        values = self.outputs(rt, inputs)
        loss = values["loss"]
        # A process without rows (a last batch smaller than the processes) still runs
        # forward and backward, for the all-reduces of batchnorm; its mean counts 0.
        if local and not torch.isfinite(loss):
            raise TrainError(
                f"the loss of step '{rt.plan.name}' became {float(loss)} in epoch "
                f"{self.epoch + 1}; lower the learning rate or clip gradients (clip_grad_norm)"
            )
        (loss if self.dist is None else loss * weight).backward()
        if self.dist is not None:
            average_gradients(rt.params, counted=local > 0)
        if rt.plan.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(rt.params, rt.plan.clip_grad_norm)
        rt.optimizer.step()
        if self.after_step is not None:
            self.after_step()
        schedule = rt.plan.schedule
        if rt.scheduler is not None and schedule is not None and schedule.per_iteration:
            rt.scheduler.step()
        prefix = "" if len(self.runtimes) == 1 else f"{rt.plan.name}_"
        scalars = torch.stack([v.detach().float() for v in values.values()])
        if self.dist is not None:
            scalars = scalars * weight if local else torch.zeros_like(scalars)
            torch.distributed.all_reduce(scalars)
        self.losses.append((rt.plan.name, float(scalars[0])))
        return {prefix + k: float(v) for k, v in zip(values, scalars)}

    def noise_types(self) -> dict[str, Any]:
        graph = self.plan.steps[0].graph
        return {n: graph.type_of(n) for n in self.plan.noise_inputs}

    def step_epoch_schedules(self, record: dict[str, float]) -> None:
        for rt in self.runtimes:
            spec = rt.plan.schedule
            if rt.scheduler is None or spec is None or spec.per_iteration:
                continue
            if isinstance(rt.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                rt.scheduler.step(self.metric(record, getattr(spec, "metric", "loss")))
            else:
                rt.scheduler.step()

    def metric(self, record: Mapping[str, float], name: str) -> float:
        if name not in record:
            known = ", ".join(k for k in record if k not in ("epoch", "lr", "seconds"))
            raise TrainError(f"no metric '{name}' to watch; this training logs {known}")
        return record[name]

    def check_early_stopping(self, record: Mapping[str, float]) -> None:
        rule = self.plan.early_stopping
        if rule is None:
            return
        value = self.metric(record, rule.metric)
        mode = rule.mode if rule.mode != "auto" else metric_mode(rule.metric)
        better = (
            self.best is None
            or (mode == "min" and value < self.best - rule.min_delta)
            or (mode == "max" and value > self.best + rule.min_delta)
        )
        if better:
            self.best, self.stale = value, 0
            return
        self.stale += 1
        if self.stale >= rule.epochs:
            self.stopped_early = True
            self.log(f"early stopping: no better {rule.metric} for {rule.epochs} epochs")

    # --- checkpoints ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """A checkpoint of everything the rest of the run depends on."""
        checkpoint.save_trainer(self, path)

    def resume(self, path: Path) -> None:
        """Continue from a checkpoint `save` wrote (of this same declaration)."""
        checkpoint.resume_trainer(self, path)

    # --- results -------------------------------------------------------------------------

    def state_dict(self, layer: str) -> dict[str, torch.Tensor]:
        """The trained weights of `layer`, keyed as its own module's state_dict."""
        return self.layers[self.plan.layers[layer].module].state_dict()


def train_mode(rt: StepRuntime) -> None:
    """Training mode, but a call under @freeze whose op computes otherwise while
    training (OpDef.differs_in_training: dropout, stochastic depth, a reparameterized
    sample, batchnorm's running statistics) stays in eval: a frozen backbone keeps the
    statistics it was trained with (transfer learning), and a frozen teacher gives the
    same output for the same input (distillation). Gradients still flow through it."""
    rt.module.train()
    graph = rt.plan.graph
    for node in graph.nodes:
        if not node.marks.get("freeze"):
            continue
        op, attrs = resolve_op(node)
        if not op.differs_in_training(attrs):
            continue
        if op.torch_module(attrs, [graph.type_of(v) for v in node.inputs]) is not None:
            rt.module.get_submodule(node.module).eval()


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" is the GPU when there is one; asking for one that is not there is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    found = torch.device(device)
    if found.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device}: CUDA is not available here (use cpu or auto)")
    return found


def _describe(record: Mapping[str, float], end: int) -> str:
    parts = [f"epoch {int(record['epoch'])}/{end}"]
    for key, value in record.items():
        if key in ("epoch", "seconds"):
            continue
        shown = f"{value:.3g}" if key == "lr" else f"{value:.4f}"
        parts.append(f"{key} {shown}")
    parts.append(f"{record['seconds']:.1f} s")
    if any(not math.isfinite(v) for v in record.values()):
        parts.append("(not finite)")
    return "  ".join(parts)
