"""PyTorch backend: generated modules are correct, shareable and plain torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

import dslnet
from dslnet.backends.torch_codegen import identifier
from dslnet.backends.torch_init import WEIGHT_CALLS
from dslnet.ir import init as init_schemes

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "specs" / "mlp.net"

SIAMESE = """
block Encoder(dim: int) {
    in x: [N, D]
    out z = x -> linear(32) -> relu -> linear(dim)
}
network Siamese() {
    layer enc = Encoder(8)
    in a: float32[N, 16]
    in b: float32[N, 16]
    out d = enc(a) - enc(b)
    out za = enc(a) * 0.5
}
"""


def test_state_dict_keys_and_counts_match_the_ir() -> None:
    prog = dslnet.load(MLP)
    graph = prog.ir("ResidualMLP")
    module = prog.torch("ResidualMLP")
    assert isinstance(module, nn.Module)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {name: p.shape for name, p in graph.parameters.items()}
    assert sum(p.numel() for p in module.parameters()) == graph.num_parameters


def test_output_shapes_follow_inference_for_several_batch_sizes() -> None:
    module = dslnet.load(MLP).torch("MLP", hidden=32).eval()
    for n in (1, 7):
        assert module(torch.randn(n, 784)).shape == (n, 10)


def test_equals_a_hand_written_module_with_the_same_weights() -> None:
    class Hand(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(784, 64)
            self.blocks = nn.ModuleList(
                nn.Sequential(
                    nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 64)
                )
                for _ in range(3)
            )
            self.head = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc1(x)
            for block in self.blocks:
                h = h + block(h)
            return self.head(torch.relu(h))

    ours = dslnet.load(MLP).torch("ResidualMLP", hidden=64).eval()
    hand = Hand().eval()
    theirs = list(hand.state_dict().values())
    with torch.no_grad():
        for (_, p), q in zip(ours.state_dict().items(), theirs, strict=True):
            p.copy_(q)
    x = torch.randn(5, 784)
    torch.testing.assert_close(ours(x), hand(x), atol=1e-6, rtol=0)


def test_default_init_is_pytorchs() -> None:
    torch.manual_seed(3)
    ours = dslnet.loads(
        "network A() {\n in x: float32[N, 20]\n out y = linear(x, 7)\n}\n", filename="a.net"
    ).torch("A")
    torch.manual_seed(3)
    ref = nn.Linear(20, 7)
    torch.testing.assert_close(ours.linear1.weight, ref.weight)
    torch.testing.assert_close(ours.linear1.bias, ref.bias)


def test_a_shared_layer_is_one_submodule_called_twice() -> None:
    prog = dslnet.loads(SIAMESE, filename="s.net")
    module = prog.torch("Siamese")
    assert [name for name, _ in module.named_children()] == ["enc"]
    assert sum(p.numel() for p in module.parameters()) == prog.ir("Siamese").num_parameters
    a = torch.randn(3, 16)
    d, za = module(a, a)
    assert torch.all(d == 0) and za.shape == (3, 8)
    source = prog.torch_source("Siamese")
    assert source.count("self.enc = Encoder()") == 1 and source.count("self.enc(") == 3


def test_generated_source_imports_only_torch() -> None:
    source = dslnet.load(MLP).torch_source("ResidualMLP")
    imports = [line for line in source.splitlines() if line.startswith(("import", "from"))]
    assert imports == ["import torch", "from torch import nn"]


def test_compiles_with_fullgraph() -> None:
    module = dslnet.load(MLP).torch("ResidualMLP", hidden=32).eval()
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    x = torch.randn(4, 784)
    torch.testing.assert_close(compiled(x), module(x))


def test_trains_under_distributed_data_parallel(tmp_path: Path) -> None:
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group(
        "gloo", rank=0, world_size=1, init_method=f"file://{tmp_path / 'rendezvous'}"
    )
    try:
        module = dslnet.load(MLP).torch("MLP", hidden=16)
        ddp = nn.parallel.DistributedDataParallel(module)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        x, y = torch.randn(8, 784), torch.randint(0, 10, (8,))
        losses = []
        for _ in range(5):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(ddp(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0]
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("x", "x"),
        ("class", "class_"),
        ("input", "input_"),
        ("__import__('os')", "import___os_"),
        ("9lives", "v_9lives"),
        ("self", "self_"),
    ],
)
def test_identifiers_are_sanitised(name: str, safe: str) -> None:
    assert identifier(name) == safe
    assert safe.isidentifier()


def test_variant_classes_are_named_by_their_arguments_and_say_which_call_they_are() -> None:
    text = """
block Proj(c: int) {
    in x: [N, D]
    out y = x -> linear(c) -> relu
}
block Proj2() {
    in x: [N, D]
    out y = x -> relu
}
network Net() {
    in x: float32[N, 4]
    a = Proj(x, 8)
    b = Proj(a, 16)
    c = Proj(b, 16)
    out y = Proj2(c)
}
"""
    source = dslnet.loads(text, filename="n.net").torch_source("Net")
    heads = [
        (line, doc.strip())
        for line, doc in zip(source.splitlines(), source.splitlines()[1:])
        if line.startswith("class ")
    ]
    # Proj(b, 16) reads a wider input than Proj(a, 16): a class of its own with the same
    # arguments, so it keeps its number, and the block Proj2's class steps past it.
    assert heads == [
        ("class Proj_c8(nn.Module):", '"""Proj(c=8)"""'),
        ("class Proj_c16(nn.Module):", '"""Proj(c=16)"""'),
        ("class Proj3(nn.Module):", '"""Proj(c=16)"""'),
        ("class Proj22(nn.Module):", '"""Proj2()"""'),
        ("class Net(nn.Module):", '"""Net()"""'),
    ]
    assert "self.proj3 = Proj3()" in source and "self.proj21 = Proj22()" in source


def test_init_schemes_per_op_and_per_block() -> None:
    prog = dslnet.loads(
        """
block Enc(d: int) {
    in x: [N, D]
    out y = x -> linear(d) -> relu -> linear(d, init="zeros")
}
network A() {
    in x: float32[N, 64]
    h = x -> linear(256, init="he")
    out y = Enc(h, 128, init="glorot")
}
""",
        filename="a.net",
    )
    module = prog.torch("A")
    assert torch.all(module.enc1.linear2.weight == 0)  # the op's own init wins
    assert torch.all(module.linear1.bias == 0)
    std = module.linear1.weight.std().item()
    assert abs(std - (2 / 64) ** 0.5) < 0.03  # He normal: std sqrt(2 / fan_in)
    bound = (6 / (256 + 128)) ** 0.5  # Glorot uniform over the block's first layer
    assert module.enc1.linear1.weight.abs().max().item() <= bound
    assert prog.ir("A").nodes[0].init == "kaiming"


def test_every_init_scheme_has_a_torch_form() -> None:
    """The schemes are the IR's; their torch calls the backend's: neither may drift."""
    assert set(WEIGHT_CALLS) == set(init_schemes.SCHEMES) - {"default"}


def test_init_on_an_op_without_weights_is_an_error() -> None:
    text = 'network A() {\n in x: float32[N, 4]\n out y = relu(x, init="he")\n}\n'
    with pytest.raises(dslnet.CompileError, match="relu has no weights to initialise"):
        dslnet.loads(text, filename="a.net").ir("A")
    text = 'network A() {\n in x: float32[N, 4]\n out y = linear(x, 3, init="hee")\n}\n'
    with pytest.raises(dslnet.CompileError, match="did you mean 'he'"):
        dslnet.loads(text, filename="a.net").ir("A")
