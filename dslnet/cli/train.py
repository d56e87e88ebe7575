"""`dslnet train FILE -t NAME`: run a spec's `train` declaration.

Writes into --out: checkpoint.safetensors after every epoch (and every
--checkpoint-every batches), metrics.csv and losses.csv, and at the end each trained
layer's weights (LAYER.safetensors) and, for the layers that are networks, LAYER.onnx
(and its int8 or fp16 forms when asked). `--nproc N` runs N data-parallel processes
via torchrun.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dslnet.api import load
from dslnet.cli.common import (
    EXIT_OK,
    UsageError,
    add_limits,
    limits_from,
    parse_overrides,
    pick_one,
    positive_int,
    require_file,
    write_files,
)
from dslnet.passes.options import QUANTIZATIONS
from dslnet.training.errors import TrainError

CHECKPOINT = "checkpoint.safetensors"
_LOCK_HELD = "DSLNET_RUN_LOCKED"  # set by the --nproc launcher for the processes it starts
METRICS = "metrics.csv"  # a row an epoch
LOSSES = "losses.csv"  # a row an optimizer step


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train the networks of a spec's train declaration")
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "-t", "--train", metavar="NAME", help="the train declaration (default: the only one)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter of the train declaration (repeatable)",
    )
    p.add_argument(
        "--data",
        metavar="FILE.npz",
        help="arrays named like the declaration's inputs (over its `data:` setting)",
    )
    p.add_argument(
        "--val-data",
        metavar="FILE.npz",
        help="held-out arrays, measured after every epoch as val_loss, val_<metric> "
        "(over the declaration's `validation:` setting)",
    )
    p.add_argument(
        "--synthetic",
        type=positive_int,
        metavar="SAMPLES",
        help="train on a generated task of this many samples (a smoke run)",
    )
    p.add_argument("--epochs", type=positive_int, help="over the declaration's `epochs:`")
    p.add_argument(
        "--out", default=None, metavar="DIR", help="where results go (default: runs/NAME)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/checkpoint.safetensors where the last run stopped",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where to train: auto (the GPU when there is one), cpu, cuda, cuda:1...",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="start over in an --out that holds an earlier run's checkpoint",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        metavar="BATCHES",
        help="also checkpoint every BATCHES batches, not only at the end of an epoch",
    )
    p.add_argument(
        "--nproc",
        type=positive_int,
        default=1,
        metavar="N",
        help="data-parallel processes (torchrun; gloo on CPU, nccl on GPU)",
    )
    p.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        help="also write LAYER.<quantization>.onnx (over `quantize:`)",
    )
    p.add_argument("--no-export", action="store_true", help="skip the ONNX models at the end")
    add_limits(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require_file(args.file)
    if args.nproc < 1:
        raise UsageError("--nproc must be at least 1")
    program = load(args.file, limits_from(args))
    name = pick_one(program.trainings, args.train, "a train declaration with -t")
    plan = program.training(name, **parse_overrides(program, name, args.set))
    out = Path(args.out or Path("runs") / name)
    if args.nproc > 1 and "RANK" not in os.environ:
        with contextlib.ExitStack() as stack:  # the launcher holds --out for its processes
            _lock(out, stack)
            return _launch(args)
    try:
        return _train(args, plan, out)
    except TrainError as err:
        raise UsageError(str(err)) from None


def _launch(args: argparse.Namespace) -> int:
    """Run this same command in `--nproc` processes under torchrun (without --nproc:
    torchrun would take it for its own option)."""
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg.startswith("--nproc="):
            skip = False
            continue
        skip = arg == "--nproc"
        if not skip:
            argv.append(arg)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
        "-m",
        "dslnet.cli",
        *argv,
    ]
    return subprocess.call(command, env={**os.environ, _LOCK_HELD: "1"})


def _train(args: argparse.Namespace, plan: Any, out: Path) -> int:
    with contextlib.ExitStack() as stack:
        # Under a plain torchrun the first process holds --out; under --nproc, the launcher.
        if os.environ.get("RANK", "0") == "0" and _LOCK_HELD not in os.environ:
            _lock(out, stack)
        return _train_locked(args, plan, out)


def _lock(out: Path, stack: contextlib.ExitStack) -> None:
    """Hold --out for this run: a second run into it stops at once (exit 2)."""
    from dslnet.fileio import atomic
    from dslnet.fileio.regular import os_reason

    created = not out.exists()
    try:
        stack.enter_context(atomic.locked(out))
        if created:  # as -o of the other commands: a mistyped path shows
            print(f"dslnet: created directory {out}{os.sep}", file=sys.stderr)
    except atomic.DirectoryBusy as err:
        raise UsageError(f"--out {err}; wait for it to end, or choose another --out") from None
    except OSError as err:
        raise UsageError(f"cannot use --out {out}: {os_reason(err)}") from None


def _train_locked(args: argparse.Namespace, plan: Any, out: Path) -> int:
    from dslnet.training.distributed import session
    from dslnet.training.reduce import Reduction
    from dslnet.training.trainer import Trainer

    checkpoint = out / CHECKPOINT
    if args.resume and not checkpoint.exists():
        raise UsageError(f"--resume: no checkpoint at {checkpoint}")
    if not args.resume and checkpoint.exists() and not args.force:
        raise UsageError(
            f"{out} already holds a run ({CHECKPOINT}): --resume continues it, --force "
            f"starts over, or choose another --out"
        )
    arrays, validation = _data(args, plan)
    with session() as dist:
        main = dist is None or dist.rank == 0
        metrics_log = MetricsLog(out, tensorboard=main)
        trainer = Trainer(
            plan,
            arrays,
            samples=args.synthetic or 1024,
            epochs=args.epochs,
            log=(lambda line: print(line, file=sys.stderr)) if main else None,
            progress=None if main else False,
            distributed=dist,
            after_epoch=metrics_log.write,
            device=_device(args.device, dist),
            validation=validation,
        )
        reduction = Reduction(trainer)  # before resuming: QAT ranges are in checkpoints
        if args.resume:
            trainer.resume(checkpoint)
            if main:
                print(f"resumed from {checkpoint} {_where(trainer)}", file=sys.stderr)
        trainer.fit(checkpoint_to=checkpoint, every=args.checkpoint_every)
        reduction.prune()
        metrics_log.close()
        if main:
            if reduction.report is not None:
                print(reduction.report.render(), file=sys.stderr)
            files = metrics_log.files(trainer)
            if not args.no_export:
                files.update(_exports(args, trainer, reduction, out))
            write_files(files)
            for path in sorted(files):
                print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def _data(args: argparse.Namespace, plan: Any) -> tuple[Any, Any]:
    """The training arrays (None: a generated task) and the validation arrays."""
    from dslnet.training.data import load_npz
    from dslnet.training.spec_files import spec_file

    data = args.data or (str(spec_file(plan, plan.data)) if plan.data else None)
    if not data and args.synthetic is None:
        raise UsageError(
            f"no data: give --data FILE.npz (arrays named {', '.join(plan.data_inputs)}), "
            f"a `data:` setting, or --synthetic SAMPLES for a generated task"
        )
    graphs = [step.graph for step in plan.steps]
    roots = None if args.data else plan.spec_roots  # a spec's files stay below its directory
    arrays = None
    if data and args.synthetic is None:
        arrays = load_npz(Path(data), plan.data_inputs, roots, graphs)
    held_out = args.val_data or (str(spec_file(plan, plan.validation)) if plan.validation else None)
    roots = None if args.val_data else plan.spec_roots
    validation = load_npz(Path(held_out), plan.data_inputs, roots, graphs) if held_out else None
    return arrays, validation


def _where(trainer: Any) -> str:
    if trainer.position:
        return f"in epoch {trainer.epoch + 1}, after batch {trainer.position}"
    return f"after epoch {trainer.epoch}"


def _exports(
    args: argparse.Namespace, trainer: Any, reduction: Any, out: Path
) -> dict[Path, bytes]:
    from dslnet.training.export import exported_files

    plan = trainer.plan
    return exported_files(
        trainer,
        out,
        quantize=args.quantize or plan.quantize,
        graphs=reduction.graphs,
        qat_export=reduction.int8_model if plan.qat else None,
    )


def _device(requested: str, dist: Any) -> str:
    """Under torchrun with GPUs, each process trains on its own (LOCAL_RANK)."""
    if dist is not None and requested in ("auto", "cuda") and _cuda_available():
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return requested


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class MetricsLog:
    """metrics.csv (a row an epoch) and losses.csv (a row an optimizer step), rewritten
    whole after every epoch so that they always match the checkpoint; and TensorBoard
    scalars under DIR/tensorboard when the tensorboard package is installed."""

    def __init__(self, out: Path, tensorboard: bool = True) -> None:
        self.out = out
        self.board: Any = None
        self.logged = 0  # epochs already sent to TensorBoard
        if not tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.board = SummaryWriter(str(out / "tensorboard"))

    def files(self, trainer: Any) -> dict[Path, bytes]:
        steps = [
            {"iteration": i + 1, "step": name, "loss": loss}
            for i, (name, loss) in enumerate(trainer.losses)
        ]
        return {self.out / METRICS: _csv(trainer.history), self.out / LOSSES: _csv(steps)}

    def write(self, trainer: Any) -> None:
        write_files(self.files(trainer))
        if self.board is None:
            return
        for record in trainer.history[self.logged :]:
            for key, value in record.items():
                if key != "epoch":
                    self.board.add_scalar(key, value, int(record["epoch"]))
        self.logged = len(trainer.history)
        self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def _csv(history: list[dict[str, Any]]) -> bytes:
    text = io.StringIO()
    keys = list(dict.fromkeys(k for record in history for k in record))
    writer = csv.DictWriter(text, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return text.getvalue().encode()
