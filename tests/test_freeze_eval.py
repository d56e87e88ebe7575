"""A frozen call (`@freeze`) runs in eval mode for everything that computes otherwise
while training (OpDef.differs_in_training), so that a frozen teacher is deterministic
and keeps its statistics, while its inputs still get gradients."""

from __future__ import annotations

import torch

import dslnet
from dslnet.ops import registry
from dslnet.training.trainer import Trainer, train_mode

DISTILL = """
network Teacher() {
    in x: float32[N, 8]
    out logits = x -> linear(16) -> batchnorm -> relu -> dropout(0.5) -> linear(3)
}

network Student() {
    in x: float32[N, 8]
    out logits = x -> linear(3)
}

train Distill() {
    @freeze
    layer teacher = Teacher()
    layer copy = Teacher()
    layer student = Student()
    in x: float32[N, 8]
    out loss = mse_loss(student(x), teacher(x)) + mse_loss(student(x), copy(x))
    epochs: 2
    batch_size: 16
}
"""


def _trainer() -> Trainer:
    return Trainer(dslnet.loads(DISTILL).training("Distill"), samples=64)


def test_a_frozen_teacher_gives_the_same_output_twice_in_training_mode() -> None:
    trainer = _trainer()
    step = trainer.runtimes[0]
    train_mode(step)
    teacher, copy = step.module.get_submodule("teacher"), step.module.get_submodule("copy")
    x = torch.randn(32, 8)
    assert torch.equal(teacher(x), teacher(x))  # dropout off, batchnorm's statistics
    assert not torch.equal(copy(x), copy(x))  # the unfrozen copy still drops units
    stochastic = ("batchnorm1", "dropout1")
    assert not any(teacher.get_submodule(name).training for name in stochastic)
    assert all(copy.get_submodule(name).training for name in stochastic)


def test_a_frozen_teacher_keeps_its_weights_and_statistics_through_training() -> None:
    trainer = _trainer()
    before = {k: v.clone() for k, v in trainer.state_dict("teacher").items()}
    copied = {k: v.clone() for k, v in trainer.state_dict("copy").items()}
    trainer.fit()
    after = trainer.state_dict("teacher")
    assert any("running_mean" in k for k in before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    moved = trainer.state_dict("copy")
    assert not torch.equal(copied["batchnorm1.running_mean"], moved["batchnorm1.running_mean"])
    # evaluation (eval mode everywhere) hands back training mode with the teacher frozen
    step = trainer.runtimes[0]
    teacher = step.module.get_submodule("teacher")
    assert not teacher.get_submodule("dropout1").training


HEAD = """
network Net() {
    in x: float32[N, 8]
    @freeze
    layer head = Head()
    out y = x -> linear(8) -> head
}

network Head() {
    in h: float32[N, 8]
    out y = h -> dropout(0.5) -> drop_path(0.5) -> linear(2)
}

train Fit() {
    layer net = Net()
    in x: float32[N, 8]
    out loss = mean(net(x) * net(x))
}
"""


def test_gradients_flow_through_a_frozen_layer_to_the_layers_before_it() -> None:
    trainer = Trainer(dslnet.loads(HEAD).training("Fit"), samples=16)
    step = trainer.runtimes[0]
    train_mode(step)
    net = step.module.get_submodule("net")
    x = torch.randn(16, 8)
    assert torch.equal(net(x), net(x))  # dropout and drop_path in eval under @freeze
    net(x).square().mean().backward()
    assert net.get_submodule("linear1").weight.grad is not None
    assert net.get_submodule("head.linear1").weight.grad is None


def _differs(name: str, **attrs: object) -> bool:
    op = registry.get(name)
    assert op is not None
    return op.differs_in_training(op.Attrs.model_validate(attrs))


def test_ops_declare_what_computes_otherwise_while_training() -> None:
    assert _differs("dropout", p=0.1) and _differs("drop_path", p=0.1)
    assert _differs("batchnorm") and _differs("reparameterize")
    assert _differs("multihead_attention", heads=2, dropout=0.1)
    assert not _differs("multihead_attention", heads=2)
    assert _differs("lstm", hidden_size=4, num_layers=2, dropout=0.2)
    assert not _differs("lstm", hidden_size=4)
    assert not _differs("linear", features=3) and not _differs("relu")


def _runs(module: torch.nn.Module, feeds: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    with torch.no_grad():
        out = module(*feeds)
    return [out] if isinstance(out, torch.Tensor) else list(out)


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """Equal up to rounding (torch's eval-mode attention takes another kernel)."""
    return all(
        x.shape == y.shape and torch.allclose(x, y, atol=1e-5, equal_nan=True)
        if x.dtype.is_floating_point
        else torch.equal(x, y)
        for x, y in zip(a, b, strict=True)
    )


def test_every_op_whose_module_trains_otherwise_declares_it() -> None:
    """Run each built-in op's examples in training mode twice and in eval mode: when the
    outputs or the buffers differ, one of the example's ops must say differs_in_training
    (else @freeze would leave it stochastic)."""
    from dslnet.backends.torch_codegen import build_module
    from dslnet.testing import DEFAULT_SIZES, random_inputs

    undeclared = []
    for name, opdef in registry.builtin_ops().items():
        for body in opdef.examples:
            indented = "\n".join("    " + line for line in body.splitlines())
            graph = dslnet.loads(f"network OpExample() {{\n{indented}\n}}\n").ir("OpExample")
            arrays = random_inputs(graph, {**DEFAULT_SIZES[1], "N": 8}).values()
            feeds = [torch.from_numpy(a) for a in arrays]
            module = build_module(graph)
            start = {k: v.clone() for k, v in module.state_dict().items()}
            first, second = _runs(module.train(), feeds, 0), _runs(module, feeds, 1)
            moved = any(not torch.equal(start[k], v) for k, v in module.state_dict().items())
            module.load_state_dict(start)
            evaluated = _runs(module.eval(), feeds, 0)
            if _same(first, second) and _same(first, evaluated) and not moved:
                continue
            declared = []
            for node in graph.nodes:
                op = registry.get(node.op)
                assert op is not None
                declared.append(op.differs_in_training(op.Attrs.model_validate(node.attrs)))
            if not any(declared):
                undeclared.append(f"{name}: {'; '.join(body.splitlines())}")
    assert not undeclared, "\n".join(undeclared)
