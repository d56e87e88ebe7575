"""Reduction during training, as a train declaration asks for it: fake quantization
(`qat: true`) and pruning rounds (`prune: iterative(...)` or `lottery(...)`) around
the trainer's own loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx
from torch import nn

from dslnet.frontend.train import settings as fn
from dslnet.ir.graph import Graph
from dslnet.ops.training import Accuracy
from dslnet.training.errors import TrainError
from dslnet.training.trainer import Trainer

# The metric pruning rounds compare, when logged: named like its op, as README and
# docs/language.md write it (`out accuracy = accuracy(logits, labels)`).
_ACCURACY = Accuracy.name


class Reduction:
    """What `trainer`'s plan asks beyond plain training, for its network layers.
    Made before a checkpoint is resumed: the fake quantization must be in place for
    its saved ranges to be restored."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        plan = trainer.plan
        # The IR each network layer is exported from (structured pruning replaces it).
        self.graphs: dict[str, Graph] = {
            name: ref.graph for name, ref in plan.layers.items() if ref.graph is not None
        }
        self.qat: dict[str, Any] = {}
        if plan.qat:
            from dslnet.training.qat import prepare_qat

            for name, graph in self.graphs.items():
                self.qat[name] = prepare_qat(trainer.layers[plan.layers[name].module], graph)
            trainer.qat = self.qat  # their ranges are saved with the checkpoints
        self.report: Any = None
        self.rewind_point: Any = None  # a lottery ticket's weights to return to
        rule = plan.prune
        if isinstance(rule, fn.Lottery) and len(self.graphs) == 1:
            from dslnet.training.lottery import EarlySnapshot

            (name,) = self.graphs
            module = trainer.layers[plan.layers[name].module]
            self.rewind_point = EarlySnapshot(module, rule.rewind)  # before any training
            trainer.after_step = _chain(trainer.after_step, self.rewind_point.step)

    def prune(self) -> None:
        """The plan's pruning rounds, after its ordinary training."""
        rule = self.trainer.plan.prune
        if rule is None:
            return
        if len(self.graphs) != 1:
            raise TrainError("prune: needs exactly one network layer to prune")
        ((name, graph),) = self.graphs.items()
        module = self.trainer.layers[self.trainer.plan.layers[name].module]
        from dslnet.training import lottery

        def train_epochs(new: nn.Module, epochs: int) -> float:
            return self.fine_tune(name, new, epochs)

        if isinstance(rule, fn.Iterative) and rule.structured:
            graph, module, self.report = lottery.iterative_structured_pruning(
                graph,
                module,
                train_epochs,
                cycles=rule.cycles,
                epochs=rule.epochs,
                ratio=rule.target,
                flops_budget=rule.flops,
                dense_epochs=0,
                scope="layer",
            )
            self.graphs[name] = graph
            self.install(name, module)
        elif isinstance(rule, fn.Iterative):
            masks, self.report = lottery.iterative_pruning(
                module,
                train_epochs,
                sparsity=rule.target or 0.0,
                cycles=rule.cycles,
                epochs=rule.epochs,
                dense_epochs=0,
                graph=graph,
                scope=rule.scope,
            )
            masks.apply(module)
        else:
            trained = [False]  # the plan's own epochs were the ticket's dense training

            def retrain(new: nn.Module, epochs: int) -> float:
                if not trained[0]:
                    trained[0] = True
                    return self.fine_tune(name, new, 0)
                return self.fine_tune(name, new, epochs)

            ticket = lottery.lottery_ticket(
                module,
                retrain,
                sparsity=rule.target,
                rounds=rule.rounds,
                epochs=max(self.trainer.epochs, 1),
                rewind_point=self.rewind_point,
                graph=graph,
                scope=rule.scope,
            )
            ticket.masks.apply(module)
            self.report = ticket.report

    def install(self, name: str, module: nn.Module) -> None:
        self.trainer.layers[self.trainer.plan.layers[name].module] = module
        self.trainer.rebuild()

    def fine_tune(self, name: str, module: nn.Module, epochs: int) -> float:
        """Train `module` in `name`'s place for `epochs` more epochs (fresh optimizers);
        the metric the rounds report: accuracy when logged, else the negated loss."""
        self.install(name, module)
        if epochs > 0:
            self.trainer.stopped_early = False
            self.trainer.fit(epochs=epochs)
        record = self.trainer.history[-1] if self.trainer.history else {}
        if _ACCURACY in record:
            return record[_ACCURACY]
        return -record.get("loss", 0.0)

    def int8_model(self, name: str) -> onnx.ModelProto:
        from dslnet.training.qat import export_qat_onnx

        handle = self.qat[name]
        handle.freeze_observers()
        self.trainer.layers[self.trainer.plan.layers[name].module].eval()
        return export_qat_onnx(handle)


def _chain(first: Callable[[], None] | None, then: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        if first is not None:
            first()
        then()

    return both
