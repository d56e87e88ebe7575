"""`train` declarations and `dslnet train`: the language, the loop, checkpoints and
resume, adversarial steps, data-parallel runs and what a run leaves behind."""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file, save_file

import dslnet
from dslnet.cli import main
from dslnet.training.errors import TrainError
from dslnet.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from synthetic import digits  # noqa: E402

SMALL = """
network MLP(hidden: int = 32, classes: int = 4) {
    in x: float32[N, 16]
    out logits = x -> linear(hidden) -> relu -> linear(classes)
}

train Fit(lr: float = 0.05) {
    layer net = MLP()
    in x: float32[N, 16]
    in y: int64[N]
    logits = net(x)
    out loss = cross_entropy(logits, y)
    out accuracy = accuracy(logits, y)
    optimizer: sgd(lr, momentum=0.9)
    schedule: cosine(warmup=4)
    batch_size: 16
    epochs: 3
}
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels = digits(2000)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=images.numpy(), labels=labels.numpy())
    return path


# --- the language ------------------------------------------------------------------------


def test_a_train_declaration_lowers_to_one_step_graph_per_step() -> None:
    plan = dslnet.loads(SMALL).training("Fit")
    (step,) = plan.steps
    assert [n for n, _ in step.graph.outputs] == ["loss", "accuracy"]
    assert step.metrics == ("accuracy",)
    assert step.optimizer.name == "sgd" and step.optimizer.momentum == 0.9
    assert plan.batch_size == 16 and plan.epochs == 3
    assert list(plan.layers) == ["net"] and plan.layers["net"].kind == "network"
    assert set(plan.data_inputs) == {"x", "y"}


def test_parameters_of_a_train_declaration_can_be_overridden() -> None:
    plan = dslnet.loads(SMALL).training("Fit", lr=0.5)
    assert plan.steps[0].optimizer.lr == 0.5


def test_adversarial_steps_share_the_layers(tmp_path: Path) -> None:
    prog = dslnet.load(ROOT / "specs" / "gan.net")
    plan = prog.training("DCGANTraining", width=4)
    assert [s.name for s in plan.steps] == ["discriminator", "generator"]
    assert plan.steps[0].update == ("D",) and plan.steps[1].update == ("G",)
    assert plan.steps[1].times == 2
    assert set(plan.noise_inputs) == {"noise", "jitter"}
    images = torch.rand(64, 1, 64, 64) * 2 - 1
    trainer = Trainer(plan, {"image": images})
    disc, gen = (rt.module for rt in trainer.runtimes)
    assert disc.D is gen.D and disc.G is gen.G  # one set of weights for both steps

    def weights(layer: str) -> dict[str, torch.Tensor]:  # learned ones, not BN statistics
        return {k: v.detach().clone() for k, v in trainer.layers[layer].named_parameters()}

    g_before, d_before = weights("G"), weights("D")
    trainer.train_step(trainer.runtimes[0], {"image": images[:32]}, 32)  # discriminator only
    assert all(torch.equal(g_before[k], v) for k, v in weights("G").items())
    assert any(not torch.equal(d_before[k], v) for k, v in weights("D").items())


def check_error(text: str, needle: str) -> dslnet.CompileError:
    with pytest.raises(dslnet.CompileError) as info:
        prog = dslnet.loads(text)
        prog.training(prog.trainings[0])
    assert needle in str(info.value.render()), info.value.render()
    return info.value


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            "optimizer: sgd(lr, momentum=0.9)",
            "optimizer: sgd(lr, momentun=0.9)|no argument 'momentun'",
        ),
        ("optimizer: sgd(lr, momentum=0.9)", "optimizer: relu(lr)|'optimizer' takes an optimizer"),
        ("optimizer: sgd(lr, momentum=0.9)", "optimiser: sgd(lr)|did you mean 'optimizer'"),
        ("batch_size: 16", "batch_size: 0|'batch_size' takes a positive int; got int 0"),
        ("schedule: cosine(warmup=4)", "schedule: adam()|adam() is not a schedule"),
        (
            "out loss = cross_entropy(logits, y)",
            "out lost = cross_entropy(logits, y)|needs an output named loss",
        ),
        ("epochs: 3", "epochs: 3\n    times: 2|'times' is for a step"),
        ("logits = net(x)", "logits = net(x) -> linear(4)|is not one of the declaration's layers"),
        (
            "out loss = cross_entropy(logits, y)",
            'out loss = cross_entropy(logits, y, reduction="none")|must be a float scalar',
        ),
    ],
)
def test_wrong_settings_are_located_errors(change: str, needle: str) -> None:
    replacement, message = needle.split("|")
    error = check_error(SMALL.replace(change, replacement), message)
    assert ":" in str(error.diagnostics[0].span)  # file:line:col


def test_update_names_layers_only() -> None:
    text = SMALL.replace("epochs: 3", "epochs: 3\n    update: [nett]")
    check_error(text, "'nett' is not one (did you mean 'net'?)")


def test_noise_annotation_belongs_to_train_declarations() -> None:
    text = "network A() {\n    @noise in x: float32[N, 4]\n    out y = x -> relu\n}\n"
    with pytest.raises(dslnet.CompileError, match="@noise on an input is for train"):
        dslnet.loads(text)


def test_step_must_be_spelt_step() -> None:
    text = SMALL.replace("    epochs: 3\n", "    epochs: 3\n    stpe first { out loss = x }\n")
    with pytest.raises(dslnet.CompileError, match="expected 'step NAME"):
        dslnet.loads(text)


# --- the loop ------------------------------------------------------------------------------


def test_training_reduces_the_loss_on_a_generated_task() -> None:
    plan = dslnet.loads(SMALL).training("Fit")
    history = Trainer(plan, samples=512).fit()
    assert history[-1]["loss"] < 0.3 * history[0]["loss"]
    assert history[-1]["accuracy"] > 0.9


def test_block_learning_rates_and_frozen_layers() -> None:
    text = SMALL.replace("sgd(lr, momentum=0.9)", 'sgd(lr, block_lr=[("net.linear2", 0.5)])')
    trainer = Trainer(dslnet.loads(text).training("Fit"), samples=64)
    groups = trainer.runtimes[0].optimizer.param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(0.05 / 4), pytest.approx(0.5 / 4)]  # warm-up
    bad = SMALL.replace("sgd(lr, momentum=0.9)", 'sgd(lr, block_lr=[("net.nothing", 0.5)])')
    with pytest.raises(TrainError, match=r"no trainable parameter under 'net\.nothing'"):
        Trainer(dslnet.loads(bad).training("Fit"), samples=64)


def test_early_stopping_ends_the_run() -> None:
    text = SMALL.replace(
        "epochs: 3", 'epochs: 50\n    early_stopping: patience(2, metric="accuracy")'
    )
    trainer = Trainer(dslnet.loads(text).training("Fit"), samples=256)
    history = trainer.fit()
    assert trainer.stopped_early and len(history) < 50


def test_transfer_learning_loads_a_sub_block(tmp_path: Path) -> None:
    source = dslnet.loads(SMALL).torch("MLP")
    save_file(
        {k: v.contiguous() for k, v in source.linear1.state_dict().items()},
        tmp_path / "first.safetensors",
    )
    (tmp_path / "t.net").write_text(
        SMALL.replace(
            "epochs: 3", 'epochs: 3\n    load_weights: [("net.linear1", "first.safetensors")]'
        )
    )
    plan = dslnet.load(tmp_path / "t.net").training("Fit")
    trainer = Trainer(plan, samples=64)
    assert torch.equal(trainer.layers["net"].linear1.weight, source.linear1.weight)


def test_wrong_training_data_is_refused() -> None:
    plan = dslnet.loads(SMALL).training("Fit")
    with pytest.raises(TrainError, match="array 'x' in the training data has shape"):
        Trainer(plan, {"x": torch.zeros(8, 15), "y": torch.zeros(8, dtype=torch.int64)})
    with pytest.raises(TrainError, match=r"holds torch\.float32, but the input is int64"):
        Trainer(plan, {"x": torch.zeros(8, 16), "y": torch.zeros(8)})


# --- the command ---------------------------------------------------------------------------


def test_mnist_through_dslnet_train_and_onnx_agrees(digits_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = ROOT / "specs" / "mnist.net"
    assert main(["train", str(spec), "--data", str(digits_npz), "--out", str(out)]) == 0
    metrics = read_csv(out / "metrics.csv")
    assert float(metrics[-1]["accuracy"]) >= 0.95
    weights = load_file(out / "net.safetensors")
    model = dslnet.load(spec).torch("MNISTNet")
    model.load_state_dict(weights)
    model.eval()
    images, _ = digits(1000, seed=7)
    with torch.no_grad():
        expected = model(images).numpy()
    session = ort.InferenceSession(str(out / "net.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": images.numpy()})
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


def _ctrl_c_interrupts() -> None:
    """In the child: Ctrl-C interrupts, even when the tests run as a background job
    (whose shell started them with SIGINT ignored, which children inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_resume_gives_the_same_final_weights(tmp_path: Path) -> None:
    spec = tmp_path / "t.net"
    spec.write_text(SMALL.replace("epochs: 3", "epochs: 8"))
    whole, split = tmp_path / "whole", tmp_path / "split"
    command = [sys.executable, "-m", "dslnet.cli", "train", str(spec), "--synthetic", "4096"]
    with (tmp_path / "whole.log").open("w") as log:
        # The uninterrupted run, beside the other (a core each on a 2-core machine).
        uninterrupted = subprocess.Popen([*command, "--out", str(whole)], stdout=log, stderr=log)
        # Interrupt a run once its first checkpoint is written, then resume it.
        run = subprocess.Popen(
            [*command, "--out", str(split)],
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_ctrl_c_interrupts,
        )
        assert run.stderr is not None
        for line in run.stderr:
            if line.startswith("epoch 2/8"):
                run.send_signal(signal.SIGINT)
                break
        run.communicate()
        assert uninterrupted.wait(timeout=600) == 0, (tmp_path / "whole.log").read_text()
    assert run.returncode == 130
    assert not (split / "net.safetensors").exists()
    resumed = subprocess.run(
        [*command, "--out", str(split), "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    found = re.search(r"after epoch (\d+)", resumed.stderr)
    assert found is not None and 1 <= int(found.group(1)) < 8  # it stopped part way
    a, b = load_file(whole / "net.safetensors"), load_file(split / "net.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_csv(whole / "losses.csv") == read_csv(split / "losses.csv")


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "t.net"
    spec.write_text(SMALL)
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 16), np.float32))
    assert (
        main(
            ["train", str(spec), "--data", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "has no array named 'y'" in capsys.readouterr().err
    assert main(["train", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "no data" in capsys.readouterr().err
    assert (
        main(["train", str(spec), "--resume", "--synthetic", "8", "--out", str(tmp_path / "o")])
        == 2
    )
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o" / "net.onnx").exists()
    done = ["train", str(spec), "--synthetic", "32", "--epochs", "1", "--out", str(tmp_path / "d")]
    assert main([*done, "--no-export"]) == 0
    assert main([*done, "--no-export"]) == 2  # a second run would overwrite the first
    assert "already holds a run" in capsys.readouterr().err
    assert main([*done, "--no-export", "--force"]) == 0


def test_vae_objective_falls(tmp_path: Path) -> None:
    images, _ = digits(512)
    plan = dslnet.load(ROOT / "specs" / "autoencoder.net").training("VAETraining", epochs=3)
    losses = [h["loss"] for h in Trainer(plan, {"x": images.clamp(0, 1)}).fit()]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.98 * losses[0]


BN_SPEC = """
network CNN() {
    in x: float32[N, 1, 12, 12]
    out logits = x -> conv2d(4, k=3, p=1) -> batchnorm -> relu -> maxpool2d(2)
        -> dropout(0.2, channel=true) -> flatten -> linear(16) -> batchnorm -> relu
        -> dropout(0.3) -> linear(4)
}

train Fit() {
    layer net = CNN()
    in x: float32[N, 1, 12, 12]
    in y: int64[N]
    out loss = cross_entropy(net(x), y)
    optimizer: sgd(0.05, momentum=0.9)
    batch_size: 16
    epochs: 2
}
"""


# SMALL's network beside BN_SPEC's: one data-parallel run checks both (a run's cost is
# mostly its processes' imports).
DDP_SPEC = (
    SMALL[: SMALL.index("train Fit")]
    + BN_SPEC[: BN_SPEC.index("train Fit")]
    + """
train Fit() {
    layer mlp = MLP()
    layer cnn = CNN()
    in x: float32[N, 16]
    in image: float32[N, 1, 12, 12]
    in y: int64[N]
    out loss = cross_entropy(mlp(x), y) + cross_entropy(cnn(image), y)
    optimizer: sgd(0.05, momentum=0.9)
    schedule: cosine(warmup=4)
    batch_size: 16
    epochs: 2
}
"""
)


def test_two_processes_follow_the_single_process_loss_curve(tmp_path: Path) -> None:
    """2 epochs x 11 batches = 22 steps of an MLP with a cosine schedule and a CNN whose
    batchnorm normalises over the global batch and whose dropout draws its masks for it.
    165 samples: each epoch ends with a batch of 5, split 3 + 2 over the processes."""
    spec = tmp_path / "t.net"
    spec.write_text(DDP_SPEC)
    one, two = tmp_path / "one", tmp_path / "two"
    base = [sys.executable, "-m", "dslnet.cli", "train", str(spec), "--synthetic", "165"]
    with (tmp_path / "two.log").open("w") as log:  # both runs at once: mostly imports
        parallel = subprocess.Popen(
            [*base, "--out", str(two), "--nproc", "2"], stdout=log, stderr=log
        )
        subprocess.run([*base, "--out", str(one)], check=True, capture_output=True)
        assert parallel.wait(timeout=600) == 0, (tmp_path / "two.log").read_text()
    a = [float(r["loss"]) for r in read_csv(one / "losses.csv")]
    b = [float(r["loss"]) for r in read_csv(two / "losses.csv")]
    assert len(a) == len(b) == 22
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-4
    for layer in ("mlp", "cnn"):
        wa, wb = load_file(one / f"{layer}.safetensors"), load_file(two / f"{layer}.safetensors")
        assert wa.keys() == wb.keys()
        assert max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa) <= 1e-4


def test_synced_batchnorm_equals_batchnorm_in_one_process(tmp_path: Path) -> None:
    import torch.distributed as dist

    from dslnet.training.syncbn import sync_batchnorm

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        plain, synced = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
        assert sync_batchnorm(torch.nn.Sequential(synced)) == 1
        x = torch.randn(6, 3, 4, 4, requires_grad=True)
        for _ in range(3):
            assert torch.allclose(plain(x), synced(x), atol=1e-5)
        assert torch.allclose(plain.running_var, synced.running_var, atol=1e-6)
        assert torch.equal(plain.num_batches_tracked, synced.num_batches_tracked)
        synced(x).square().sum().backward()
        grad = x.grad.clone()  # type: ignore[union-attr]
        x.grad = None
        plain(x).square().sum().backward()
        assert torch.allclose(grad, x.grad, atol=1e-4)  # type: ignore[arg-type]
        plain.eval(), synced.eval()
        assert torch.allclose(plain(x), synced(x), atol=1e-5)
    finally:
        dist.destroy_process_group()


QAT_SPEC = """
network CNN() {
    in x: float32[N, 1, 28, 28]
    out logits = x -> conv2d(8, k=3, p=1) -> batchnorm -> relu -> maxpool2d(2)
        -> conv2d(16, k=3, p=1) -> relu -> maxpool2d(2) -> flatten -> linear(10)
}

train Quantized(epochs: int = 2) {
    layer net = CNN()
    in x: float32[N, 1, 28, 28]
    in labels: int64[N]
    logits = net(x)
    out loss = cross_entropy(logits, labels)
    out accuracy = accuracy(logits, labels)
    optimizer: adam(lr=2e-3)
    batch_size: 64
    epochs: epochs
    qat: true
}
"""


def test_qat_int8_onnx_agrees_with_the_fake_quant_model() -> None:
    from dslnet.training.reduce import Reduction

    images, labels = digits(1000)
    plan = dslnet.loads(QAT_SPEC).training("Quantized")
    trainer = Trainer(plan, {"x": images, "labels": labels})
    reduction = Reduction(trainer)
    trainer.fit()
    model = reduction.int8_model("net")
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    net = trainer.layers["net"]
    probe, _ = digits(1000, seed=3)
    with torch.no_grad():
        expected = net(probe).argmax(1).numpy()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": probe.numpy()})
    agreement = float((got.argmax(1) == expected).mean())
    print(f"QAT int8 ONNX agrees with the fake-quant model on {agreement:.2%}")
    assert agreement >= 0.98


@pytest.mark.parametrize("rule", ["iterative(0.8, cycles=2)", "lottery(0.8, rounds=2)"])
def test_pruning_rounds_reach_their_sparsity(rule: str) -> None:
    from dslnet.training.reduce import Reduction

    text = SMALL.replace("epochs: 3", f"epochs: 2\n    prune: {rule}")
    trainer = Trainer(dslnet.loads(text).training("Fit"), samples=512)
    reduction = Reduction(trainer)
    trainer.fit()
    reduction.prune()
    net = trainer.layers["net"]
    hidden = net.linear1.weight  # the output layer stays dense
    assert float((hidden == 0).float().mean()) == pytest.approx(0.8, abs=0.01)
    assert trainer.history[-1]["accuracy"] > 0.85


class Pairs(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A map-style dataset of (x, y) tuples, in the order of the inputs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def test_a_dataset_trains_like_the_same_arrays() -> None:
    plan = dslnet.loads(SMALL).training("Fit")
    x, y = torch.randn(128, 16), torch.randint(0, 4, (128,))
    from_arrays = Trainer(plan, {"x": x, "y": y}).fit()
    from_dataset = Trainer(plan, Pairs(x, y)).fit()
    assert [r["loss"] for r in from_arrays] == [r["loss"] for r in from_dataset]


def test_a_dataloader_gives_its_own_batches() -> None:
    plan = dslnet.loads(SMALL).training("Fit")
    x, y = torch.randn(96, 16), torch.randint(0, 4, (96,))
    dicts = [{"x": x[i], "y": y[i]} for i in range(96)]
    loader = torch.utils.data.DataLoader(dicts, batch_size=32)  # type: ignore[arg-type]
    trainer = Trainer(plan, loader)
    trainer.fit(epochs=1)
    assert len(trainer.losses) == 3  # 96 / 32 batches, not the plan's 16
    bad = torch.utils.data.DataLoader(Pairs(x, y.float()), batch_size=32)
    with pytest.raises(TrainError, match=r"holds torch\.float32, but the input is int64"):
        Trainer(plan, bad).fit(epochs=1)


def test_a_short_dcgan_run_stays_finite() -> None:
    plan = dslnet.load(ROOT / "specs" / "gan.net").training("DCGANTraining", width=4)
    images = torch.rand(96, 1, 64, 64) * 2 - 1
    trainer = Trainer(plan, {"image": images})
    (record,) = trainer.fit(epochs=1)
    assert len(trainer.losses) == 3 * 3  # 3 batches x (1 discriminator + 2 generator steps)
    assert all(np.isfinite(loss) for _, loss in trainer.losses)
    assert 0.0 < record["discriminator_fake_score"] < 1.0


def test_a_resumed_qat_run_keeps_its_ranges(tmp_path: Path) -> None:
    from dslnet.training.reduce import Reduction

    images, labels = digits(256)
    plan = dslnet.loads(QAT_SPEC).training("Quantized", epochs=2)

    def trainer() -> tuple[Trainer, Reduction]:
        t = Trainer(plan, {"x": images, "labels": labels})
        return t, Reduction(t)

    whole, whole_qat = trainer()
    whole.fit()
    part, _ = trainer()
    part.fit(epochs=1, checkpoint_to=tmp_path / "c.safetensors")
    again, again_qat = trainer()
    again.resume(tmp_path / "c.safetensors")
    again.fit()
    a, b = whole.state_dict("net"), again.state_dict("net")
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = whole_qat.int8_model("net").SerializeToString()
    assert first == again_qat.int8_model("net").SerializeToString()


def test_int8_static_export_calibrates_on_the_training_data(tmp_path: Path) -> None:
    from dslnet.training.export import calibration_file

    renamed = SMALL.replace(
        "in x: float32[N, 16]\n    in y", "in features: float32[N, 16]\n    in y"
    )
    plan = dslnet.loads(renamed.replace("net(x)", "net(features)")).training("Fit")
    trainer = Trainer(plan, samples=300)
    path = calibration_file(trainer, "net", tmp_path)
    assert path is not None
    with np.load(path) as saved:
        assert saved.files == ["x"]  # the network's own input name
        first = next(iter(trainer.source.batches(256, 0, 0)))["features"]
        assert np.array_equal(saved["x"], first.numpy())
    out = tmp_path / "run"
    spec = tmp_path / "t.net"
    spec.write_text(SMALL)
    args = ["train", str(spec), "--synthetic", "256", "--epochs", "1", "--out", str(out)]
    assert main([*args, "--quantize", "int8-static"]) == 0
    model = onnx.load(out / "net.int8-static.onnx")
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def test_lottery_ticket_rewinds_to_the_initial_weights() -> None:
    from dslnet.training.reduce import Reduction

    text = SMALL.replace("epochs: 3", "epochs: 2\n    prune: lottery(0.5, rounds=1)")
    trainer = Trainer(dslnet.loads(text).training("Fit"), samples=256)
    initial = {k: v.clone() for k, v in trainer.state_dict("net").items()}
    reduction = Reduction(trainer)
    trainer.fit()
    reduction.prune()
    rewound = reduction.rewind_point.weights
    assert all(torch.equal(initial[k], rewound[k]) for k in initial)
    assert len(reduction.report.rounds) == 2  # the dense run and one ticket


def test_structured_pruning_meets_a_flops_budget() -> None:
    from dslnet.training.reduce import Reduction
    from dslnet.training.sparsify import flops_per_sample

    rule = "iterative(flops=0.5, cycles=2, structured=true)"
    text = SMALL.replace("epochs: 3", f"epochs: 2\n    prune: {rule}")
    plan = dslnet.loads(text).training("Fit")
    trainer = Trainer(plan, samples=256)
    reduction = Reduction(trainer)
    trainer.fit()
    reduction.prune()
    dense = flops_per_sample(plan.layers["net"].graph)  # type: ignore[arg-type]
    assert flops_per_sample(reduction.graphs["net"]) <= 0.5 * dense
    assert trainer.layers["net"].linear1.out_features < 32
    with pytest.raises(dslnet.CompileError, match="needs structured=true"):
        dslnet.loads(SMALL.replace("epochs: 3", "prune: iterative(flops=0.5)")).training("Fit")


def test_tensorboard_scalars_when_it_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tensorboard is not a dependency: a stand-in SummaryWriter records the calls."""
    import types

    calls: list[tuple[str, float, int]] = []

    class Writer:
        def __init__(self, logdir: str) -> None:
            assert logdir == str(tmp_path / "run" / "tensorboard")

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            calls.append((tag, value, step))

        def flush(self) -> None: ...

        def close(self) -> None: ...

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Writer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    spec = tmp_path / "t.net"
    spec.write_text(SMALL)
    args = ["train", str(spec), "--synthetic", "64", "--out", str(tmp_path / "run")]
    assert main([*args, "--no-export"]) == 0
    assert [(tag, step) for tag, _, step in calls if tag == "loss"] == [
        ("loss", 1),
        ("loss", 2),
        ("loss", 3),
    ]
    losses = [float(r["loss"]) for r in read_csv(tmp_path / "run" / "metrics.csv")]
    assert [v for tag, v, _ in calls if tag == "loss"] == pytest.approx(losses)


class Interrupt(Exception):
    pass


def test_resume_in_the_middle_of_an_epoch(tmp_path: Path) -> None:
    """A checkpoint every 3 batches; the run stops after its 7th step (mid-epoch 1,
    past the checkpoint at batch 6), and the resumed run ends like the whole one."""
    plan = dslnet.loads(SMALL.replace("epochs: 3", "epochs: 2")).training("Fit")
    x, y = torch.randn(160, 16), torch.randint(0, 4, (160,))
    whole = Trainer(plan, Pairs(x, y))
    whole.fit()
    steps = [0]

    def stop_after_seven() -> None:
        steps[0] += 1
        if steps[0] == 7:
            raise Interrupt

    stopped = Trainer(plan, Pairs(x, y), after_step=stop_after_seven)
    with pytest.raises(Interrupt):
        stopped.fit(checkpoint_to=tmp_path / "c.safetensors", every=3)
    again = Trainer(plan, Pairs(x, y))
    again.resume(tmp_path / "c.safetensors")
    assert (again.epoch, again.position) == (0, 6)
    again.fit(checkpoint_to=tmp_path / "c.safetensors", every=3)
    a, b = whole.state_dict("net"), again.state_dict("net")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.losses == whole.losses
    assert [r["loss"] for r in again.history] == [r["loss"] for r in whole.history]


def test_validation_metrics_are_measured_in_eval_mode(tmp_path: Path) -> None:
    text = SMALL.replace(
        "epochs: 3", 'epochs: 20\n    early_stopping: patience(2, metric="val_loss")'
    )
    plan = dslnet.loads(text).training("Fit")
    x, y = torch.randn(256, 16), torch.randint(0, 4, (256,))  # labels are noise: it overfits
    held_out = {"x": torch.randn(64, 16), "y": torch.randint(0, 4, (64,))}
    trainer = Trainer(plan, {"x": x, "y": y}, validation=held_out)
    history = trainer.fit()
    assert trainer.stopped_early and len(history) < 20
    net = trainer.layers["net"].eval()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(net(held_out["x"]), held_out["y"])
    assert history[-1]["val_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert 0.0 <= history[-1]["val_accuracy"] <= 1.0


def test_the_command_takes_validation_data_and_a_device(tmp_path: Path) -> None:
    spec = tmp_path / "t.net"
    spec.write_text(SMALL)
    np.savez(tmp_path / "val.npz", x=np.zeros((8, 16), np.float32), y=np.zeros(8, np.int64))
    out = tmp_path / "run"
    args = ["train", str(spec), "--synthetic", "64", "--out", str(out), "--no-export"]
    assert main([*args, "--val-data", str(tmp_path / "val.npz"), "--device", "cpu"]) == 0
    assert "val_loss" in read_csv(out / "metrics.csv")[0]
    if not torch.cuda.is_available():
        assert main([*args, "--device", "cuda"]) == 2


def test_checkpoints_every_few_batches_from_the_command(tmp_path: Path) -> None:
    spec = tmp_path / "t.net"
    spec.write_text(SMALL.replace("epochs: 3", "epochs: 1"))
    out = tmp_path / "run"
    args = ["train", str(spec), "--synthetic", "64", "--out", str(out), "--no-export"]
    assert main([*args, "--checkpoint-every", "2"]) == 0
    from dslnet.training import checkpoint

    _, state = checkpoint.load(out / "checkpoint.safetensors")
    assert state["progress"]["epoch"] == 1 and state["progress"]["position"] == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_the_gpu_matches_the_cpu() -> None:
    plan = dslnet.loads(SMALL).training("Fit")
    x, y = torch.randn(128, 16), torch.randint(0, 4, (128,))
    cpu = Trainer(plan, {"x": x, "y": y}).fit()
    gpu = Trainer(plan, {"x": x, "y": y}, device="cuda").fit()
    assert [r["loss"] for r in gpu] == pytest.approx([r["loss"] for r in cpu], abs=1e-4)


def test_frozen_batchnorm_keeps_its_running_statistics() -> None:
    text = """
network Backbone() {
    in x: float32[N, 8]
    out h = x -> linear(16) -> batchnorm -> relu
}

network Net() {
    in x: float32[N, 8]
    @freeze
    layer backbone = Backbone()
    out logits = x -> backbone -> linear(3)
}

train Fit() {
    layer net = Net()
    in x: float32[N, 8]
    in y: int64[N]
    out loss = cross_entropy(net(x), y)
    epochs: 2
    batch_size: 16
}
"""
    trainer = Trainer(dslnet.loads(text).training("Fit"), samples=64)
    before = {k: v.clone() for k, v in trainer.state_dict("net").items()}
    trainer.fit()
    after = trainer.state_dict("net")
    frozen = [k for k in before if k.startswith("backbone.")]
    assert any("running_mean" in k for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # weights and statistics
    assert not torch.equal(before["linear1.weight"], after["linear1.weight"])


def test_dropout_masks_drop_a_share_p_and_scale_the_rest() -> None:
    from dslnet.training.dropout import MaskSource, share_dropout

    layers = torch.nn.Sequential(torch.nn.Dropout(0.25), torch.nn.Dropout2d(0.5))
    assert share_dropout(layers, MaskSource(0, torch.device("cpu"))) == 2
    x = torch.ones(64, 8, 4, 4)
    dropped = layers[0](x)
    assert torch.equal(dropped.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert float((dropped == 0).float().mean()) == pytest.approx(0.25, abs=0.02)
    channels = layers[1](x)
    assert torch.equal(channels.amax((2, 3)), channels.amin((2, 3)))  # whole channels
    layers.eval()
    assert torch.equal(layers(x), x)


DIFFUSION = """
network Denoiser(T: int = 10) {
    in x: float32[N, 4]
    in t: int64[N]
    out eps = x + embedding(t, T, 4) -> linear(4)
}

train Diffuse(T: int = 10) {
    layer net = Denoiser(T=T)
    in x: float32[N, 4]
    @noise(randint(0, T)) in t: int64[N]
    @noise in eps: float32[N, 4]
    out loss = mse_loss(net(x + eps, t), eps)
    optimizer: sgd(lr=0.1)
    batch_size: 8
    epochs: 2
}
"""


def test_randint_noise_draws_integers_in_its_range() -> None:
    from dslnet.frontend.train.noise import Noise
    from dslnet.training.data import noise

    plan = dslnet.loads(DIFFUSION).training("Diffuse", T=7)
    assert plan.noise_inputs == {"t": Noise("randint", 0, 7), "eps": Noise("normal")}
    types = {n: plan.steps[0].graph.type_of(n) for n in plan.noise_inputs}
    drawn = dict(noise(plan.noise_inputs, types, 1000, torch.Generator().manual_seed(0)))
    t = drawn["t"]
    assert t.dtype == torch.int64 and t.shape == (1000,)
    assert sorted(t.unique().tolist()) == list(range(7))  # every timestep, none outside
    assert drawn["eps"].dtype == torch.float32 and drawn["eps"].shape == (1000, 4)
    again = dict(noise(plan.noise_inputs, types, 1000, torch.Generator().manual_seed(0)))
    assert torch.equal(again["t"], t)


def test_randint_noise_resumes_bit_exact(tmp_path: Path) -> None:
    """Timesteps come from the trainer's one noise generator, saved in a checkpoint."""
    plan = dslnet.loads(DIFFUSION).training("Diffuse")
    data = {"x": torch.randn(64, 4)}
    whole = Trainer(plan, data)
    whole.fit()
    steps = [0]

    def stop_after_five() -> None:
        steps[0] += 1
        if steps[0] == 5:
            raise Interrupt

    stopped = Trainer(plan, data, after_step=stop_after_five)
    with pytest.raises(Interrupt):
        stopped.fit(checkpoint_to=tmp_path / "c.safetensors", every=3)
    again = Trainer(plan, data)
    again.resume(tmp_path / "c.safetensors")
    again.fit(checkpoint_to=tmp_path / "c.safetensors", every=3)
    a, b = whole.state_dict("net"), again.state_dict("net")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.losses == whole.losses
