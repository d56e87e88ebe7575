"""Data-parallel runs (`dslnet train --nproc N`): how a global batch is shared out,
and what a process reports when another one of its run died."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dslnet
from dslnet.cli import main
from dslnet.training import distributed
from dslnet.training.distributed import peer_died, share
from dslnet.training.trainer import Trainer

SPEC = """
network MLP() {
    in x: float32[N, 16]
    out logits = x -> linear(32) -> relu -> dropout(0.2) -> linear(4)
}

train Fit() {
    layer net = MLP()
    in x: float32[N, 16]
    in y: int64[N]
    out loss = cross_entropy(net(x), y)
    optimizer: sgd(0.05, momentum=0.9)
    batch_size: 16
    epochs: 2
}
"""

GLOO_PEER_GONE = (
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
    "[127.0.0.1]:27366. This is typically caused by a remote worker crashing."
)


@pytest.mark.parametrize(
    ("size", "world", "rows"),
    [(16, 2, [8, 8]), (5, 2, [3, 2]), (7, 3, [3, 2, 2]), (1, 2, [1, 0]), (2, 4, [1, 1, 0, 0])],
)
def test_a_batch_is_shared_out_whole_in_order(size: int, world: int, rows: list[int]) -> None:
    slices = [share(size, rank, world) for rank in range(world)]
    assert [s.stop - s.start for s in slices] == rows
    assert [i for s in slices for i in range(s.start, s.stop)] == list(range(size))


def test_the_last_batch_is_kept_with_several_processes(tmp_path: Path) -> None:
    """No step is dropped: the same batch count as one process, partial batch included."""
    spec = tmp_path / "t.net"
    spec.write_text(SPEC)
    plan = dslnet.load(spec).training("Fit")
    one = Trainer(plan, samples=37)
    two = Trainer(plan, samples=37, distributed=distributed.Distributed(rank=1, world=2))
    assert one.batches_per_epoch() == two.batches_per_epoch() == 3
    assert two.shard(5) == slice(3, 5)


def test_a_process_without_rows_follows_the_single_process_loss_curve(tmp_path: Path) -> None:
    """17 samples in batches of 16: the last batch has one row, the second process none."""
    spec = tmp_path / "t.net"
    spec.write_text(SPEC)
    one, two = tmp_path / "one", tmp_path / "two"
    base = [sys.executable, "-m", "dslnet.cli", "train", str(spec), "--synthetic", "17"]
    base += ["--no-export"]
    with (tmp_path / "two.log").open("w") as log:  # both runs at once: mostly imports
        parallel = subprocess.Popen(
            [*base, "--out", str(two), "--nproc", "2"], stdout=log, stderr=log
        )
        subprocess.run([*base, "--out", str(one)], check=True, capture_output=True)
        assert parallel.wait(timeout=600) == 0, (tmp_path / "two.log").read_text()
    a = [float(line.split(",")[2]) for line in (one / "losses.csv").read_text().split()[1:]]
    b = [float(line.split(",")[2]) for line in (two / "losses.csv").read_text().split()[1:]]
    assert len(a) == len(b) == 4
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-4


@pytest.mark.parametrize(
    "message",
    [GLOO_PEER_GONE, "Connection reset by peer", "[Rank 1]: Broken pipe while sending"],
)
def test_a_dropped_connection_means_a_peer_died(message: str) -> None:
    died = peer_died(RuntimeError(message), rank=0, world=2)
    assert died is not None
    assert str(died).startswith("rank 0: the process of rank 1 of this 2-process run died")
    several = peer_died(RuntimeError(message), rank=2, world=4)
    assert several is not None and "rank 2: another process of this 4-process run" in str(several)


def test_other_runtime_errors_are_not_a_peer_dying() -> None:
    assert peer_died(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), 0, 2) is None


def test_a_worker_whose_peer_died_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second process of a two-process run, its collectives stubbed: the first one's
    connection drops in the middle of training."""
    for name in ("init_process_group", "destroy_process_group", "barrier"):
        monkeypatch.setattr(torch.distributed, name, lambda *args, **kwargs: None)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *args, **kwargs: 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")

    def connection_dropped(*args: object, **kwargs: object) -> None:
        raise RuntimeError(GLOO_PEER_GONE)

    monkeypatch.setattr(Trainer, "fit", connection_dropped)
    spec = tmp_path / "t.net"
    spec.write_text(SPEC)
    code = main(["train", str(spec), "--synthetic", "32", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "rank 1: the process of rank 0 of this 2-process run died" in err
    assert "internal error" not in err and "bug" not in err
