"""Weights import by structure (`dslnet weights import`, `Program.import_weights`):
hand-written PyTorch modules whose names and registration order differ from the
spec's load into the generated module with outputs equal to the last bit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import dslnet
from dslnet.cli import main
from dslnet.core.diagnostics import CompileError
from dslnet.ir.weight_import import WeightImportError
from dslnet.ops import registry
from dslnet.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def randomize(module: nn.Module) -> nn.Module:
    """Every parameter and running statistic drawn afresh (nothing left at 0 or 1),
    so that a swapped pair of tensors shows in the outputs."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                low = 0.5 if name.endswith("running_var") else -0.5
                tensor.uniform_(low, low + 1.0)
    return module.eval()


def same_outputs(
    program: dslnet.Program,
    network: str,
    reference: nn.Module,
    state: dict[str, torch.Tensor],
    shape: tuple[int, ...],
    **params: object,
) -> None:
    net = program.torch(network, **params)
    net.load_state_dict(state)
    net.eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))


# --- reference modules, written as their authors did ---------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision's resnet18, names and all."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (c, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            setattr(
                self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c))
            )
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class EncoderBlock(nn.Module):
    def __init__(self, d: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq: int, d: int, depth: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, seq, d))  # [1, T, D]; the spec's [T, D]
        self.layers = nn.Sequential(*[EncoderBlock(d, heads, mlp) for _ in range(depth)])
        self.ln = nn.LayerNorm(d, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(x + self.pos_embedding))


class VisionTransformer(nn.Module):
    """torchvision's ViT layout: the class token registered before the patch projection."""

    def __init__(
        self,
        image: int = 32,
        patch: int = 4,
        d: int = 48,
        depth: int = 2,
        heads: int = 3,
        mlp: int = 96,
        classes: int = 10,
    ) -> None:
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.conv_proj = nn.Conv2d(3, d, patch, patch)
        self.encoder = Encoder((image // patch) ** 2 + 1, d, depth, heads, mlp)
        self.heads = nn.Sequential()
        self.heads.add_module("head", nn.Linear(d, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.size(0), -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


class CNBlock(nn.Module):
    """A ConvNeXt block with its layer scale registered first (applied last)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(c))
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1 = nn.Linear(c, 4 * c)
        self.pwconv2 = nn.Linear(4 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.pwconv2(nn.functional.gelu(self.pwconv1(y))).permute(0, 3, 1, 2)
        return x + self.gamma.view(-1, 1, 1) * y


class ConvNeXtish(nn.Module):
    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, 4)
        self.stages = nn.Sequential(CNBlock(c), CNBlock(c))
        self.head = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))
        return self.head(torch.flatten(h.mean((2, 3), keepdim=True), 1))


CONVNEXT = """
block CNBlock(c: int) {
    in x: [N, C, H, W]
    y = x -> conv2d(c, k=7, p=3, groups=c) -> permute([0, 2, 3, 1]) -> layernorm(eps=1e-6)
        -> linear(4 * c) -> gelu -> linear(c) -> permute([0, 3, 1, 2])
        -> conv2d(c, k=1, groups=c, bias=false)
    out x + y
}

network ConvNeXtish(c: int = 16) {
    in x: float32[N, 3, 32, 32]
    h = x -> conv2d(c, k=4, s=4) -> CNBlock(c) -> CNBlock(c)
    out y = h -> global_avgpool -> flatten -> linear(10)
}
"""


class PatchMerging(nn.Module):
    """Swin's patch merging: the reduction registered before the norm it follows."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * c, 2 * c, bias=False)
        self.norm = nn.LayerNorm(4 * c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(x))


class Swinish(nn.Module):
    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.embed = nn.Linear(c, 4 * c)
        self.merge1 = PatchMerging(c)
        self.merge2 = PatchMerging(c // 2)
        self.head = nn.Linear(c, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.merge2(self.merge1(self.embed(x))))


SWIN = """
block PatchMerging(c: int) {
    in x: [N, T, D]
    out y = x -> layernorm -> linear(c, bias=false)
}

network Swinish(c: int = 8) {
    in x: float32[N, 6, c]
    out y = x -> linear(4 * c) -> PatchMerging(2 * c) -> PatchMerging(c) -> linear(5)
}
"""


# --- matching ------------------------------------------------------------------------


def test_resnet18_from_torchvision_names(tmp_path: Path) -> None:
    reference = randomize(ResNet18(classes=10))
    program = dslnet.load(ROOT / "specs" / "resnet.net")
    torch.save(reference.state_dict(), tmp_path / "r18.pt")
    save_file(reference.state_dict(), tmp_path / "r18.safetensors")
    for source in (tmp_path / "r18.pt", tmp_path / "r18.safetensors", reference.state_dict()):
        state = program.import_weights(source, "ResNet18", classes=10, size=64)
        same_outputs(program, "ResNet18", reference, state, (2, 3, 64, 64), classes=10, size=64)
    found = program.match_weights(reference.state_dict(), "ResNet18", classes=10, size=64)
    mapping = found.mapping()
    assert mapping["conv1.weight"] == "stem1.conv2d1.weight"
    assert mapping["layer2.0.downsample.0.weight"] == "basic_stage2.basic_block1.conv2d3.weight"
    assert (
        mapping["layer2.0.downsample.1.running_var"]
        == "basic_stage2.basic_block1.batchnorm3.running_var"
    )
    assert mapping["fc.bias"] == "head1.linear1.bias"


def test_old_checkpoints_without_batch_counters_get_initial_ones() -> None:
    reference = randomize(ResNet18(classes=10))
    state = {k: v for k, v in reference.state_dict().items() if "num_batches" not in k}
    program = dslnet.load(ROOT / "specs" / "resnet.net")
    found = program.match_weights(state, "ResNet18", classes=10, size=64)
    assert len(found.initial) == 20 and not found.fresh
    assert "(initial value)" in found.render()
    imported = program.import_weights(state, "ResNet18", classes=10, size=64)
    same_outputs(program, "ResNet18", reference, imported, (1, 3, 64, 64), classes=10, size=64)


def test_vit_class_token_before_the_patch_projection_and_positions_reshaped(
    tmp_path: Path,
) -> None:
    reference = randomize(VisionTransformer())
    assert list(reference.state_dict())[:2] == ["class_token", "conv_proj.weight"]
    program = dslnet.load(ROOT / "specs" / "vit.net")
    params = {"dim": 48, "depth": 2, "heads": 3, "mlp": 96}
    save_file(reference.state_dict(), tmp_path / "vit.safetensors")
    state = program.import_weights(tmp_path / "vit.safetensors", "ViT", **params)
    same_outputs(program, "ViT", reference, state, (2, 3, 32, 32), **params)
    found = program.match_weights(tmp_path / "vit.safetensors", "ViT", **params)
    assert found.mapping()["class_token"] == "cls1.token"
    assert "[1, 65, 48] as [65, 48]" in found.render()
    assert found.mapping()["encoder.layers.1.self_attention.out_proj.bias"] == (
        "vi_tblock2.attn1.out_proj.bias"
    )


def test_safetensors_names_in_natural_order(tmp_path: Path) -> None:
    """A .safetensors file sorts its names (`layers.10` before `layers.2`): the
    blocks are put back in their numbers' order."""
    reference = randomize(VisionTransformer(d=24, depth=11, mlp=32))
    program = dslnet.load(ROOT / "specs" / "vit.net")
    params = {"dim": 24, "depth": 11, "heads": 3, "mlp": 32}
    save_file(reference.state_dict(), tmp_path / "vit.safetensors")
    state = program.import_weights(tmp_path / "vit.safetensors", "ViT", **params)
    same_outputs(program, "ViT", reference, state, (2, 3, 32, 32), **params)


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)  # applied first, sorted last
        self.head = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.proj(x)))


def test_sorted_names_that_do_not_tell_the_order_are_refused_not_guessed(
    tmp_path: Path,
) -> None:
    body = "in x: float32[N, 8]\n    out y = x -> linear(8) -> relu -> linear(8)"
    program = dslnet.loads(f"network Two() {{\n    {body}\n}}\n", "two.net")
    reference = randomize(TwoLayers())
    torch.save(reference.state_dict(), tmp_path / "two.pt")  # registration order: decided
    state = program.import_weights(tmp_path / "two.pt", "Two")
    same_outputs(program, "Two", reference, state, (3, 8))
    save_file(reference.state_dict(), tmp_path / "two.safetensors")  # sorted: head, proj
    with pytest.raises(WeightImportError) as caught:
        program.import_weights(tmp_path / "two.safetensors", "Two")
    assert (
        "'linear1.weight' [8, 8] (linear) could be any of 2 checkpoint tensors: 'head.weight'"
        in (caught.value.problems[0])
    )


def test_convnext_layer_scale_registered_first(tmp_path: Path) -> None:
    reference = randomize(ConvNeXtish())
    assert list(reference.state_dict())[1:3] == ["stem.bias", "stages.0.gamma"]
    program = dslnet.loads(CONVNEXT)
    torch.save(reference.state_dict(), tmp_path / "cn.pth")
    state = program.import_weights(tmp_path / "cn.pth", "ConvNeXtish")
    same_outputs(program, "ConvNeXtish", reference, state, (2, 3, 32, 32))
    mapping = program.match_weights(tmp_path / "cn.pth", "ConvNeXtish").mapping()
    assert mapping["stages.1.gamma"] == "cnblock2.conv2d2.weight"  # [16] as [16, 1, 1, 1]


def test_swin_reduction_registered_before_its_norm() -> None:
    reference = randomize(Swinish())
    program = dslnet.loads(SWIN)
    state = program.import_weights(reference.state_dict(), "Swinish")
    same_outputs(program, "Swinish", reference, state, (3, 6, 8))
    mapping = program.match_weights(reference.state_dict(), "Swinish").mapping()
    assert mapping["merge1.norm.weight"] == "patch_merging1.layernorm1.weight"
    assert mapping["merge2.reduction.weight"] == "patch_merging2.linear1.weight"


# --- what cannot be inferred ---------------------------------------------------------

FLAT = """
block Mix(d: int) {
    in x: [N, D]
    out y = x -> linear(d) -> layernorm
}

network Flat(d: int = 8) {
    in x: float32[N, 8]
    out y = x -> Mix(d) -> linear(3)
}
"""


class FlatMix(nn.Module):
    """A linear and a norm written as bare parameters of one module: the names
    say nothing and the three [8] vectors have the same shape."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(8, 8))
        self.p = nn.Parameter(torch.zeros(8))
        self.q = nn.Parameter(torch.zeros(8))
        self.r = nn.Parameter(torch.zeros(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x @ self.w.T + self.p, (8,), self.q, self.r)


class Flat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix = FlatMix()
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mix(x))


MAP = """
# the bias, then the norm's scale and shift
mix.p = mix1.linear1.bias
mix.q = mix1.layernorm1.weight   # scale
mix.r = mix1.layernorm1.bias
"""


def test_ambiguity_is_refused_with_the_candidates_then_settled_by_a_map(tmp_path: Path) -> None:
    reference = randomize(Flat())
    program = dslnet.loads(FLAT, "flat.net")
    with pytest.raises(WeightImportError) as caught:
        program.import_weights(reference.state_dict(), "Flat")
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(
        "flat.net:4:18: 'mix1.linear1.bias' [8] (linear) could be any of 3"
    )
    assert "inside 'mix'" in problems[0]
    assert "'mix.p' [8], 'mix.q' [8], 'mix.r' [8]" in problems[0]
    assert all("--map" in p for p in problems)
    (tmp_path / "flat.map").write_text(MAP)
    state = program.import_weights(reference.state_dict(), "Flat", mapping=tmp_path / "flat.map")
    same_outputs(program, "Flat", reference, state, (4, 8))
    as_dict = {
        "mix.p": "mix1.linear1.bias",
        "mix.q": "mix1.layernorm1.weight",
        "mix.r": "mix1.layernorm1.bias",
    }
    state = program.import_weights(reference.state_dict(), "Flat", mapping=as_dict)
    same_outputs(program, "Flat", reference, state, (4, 8))
    found = program.match_weights(reference.state_dict(), "Flat", mapping=as_dict)
    assert found.mapping()["mix.w"] == "mix1.linear1.weight"  # the rest is still inferred
    assert re.search(r"mix\.q +-> mix1\.layernorm1\.weight +\[8\] \(map\)", found.render())


def test_a_map_naming_what_is_not_there_is_located() -> None:
    reference = Flat()
    program = dslnet.loads(FLAT, "flat.net")
    rules = {
        "mix.pp": "mix1.linear1.bias",
        "mix.q": "mix1.layernorm.weight",
        "mix.w": "linear1.weight",
    }
    with pytest.raises(CompileError) as caught:
        program.import_weights(reference.state_dict(), "Flat", mapping=rules)
    text = caught.value.render()
    assert (
        "<mapping>:1:1: error: 'mix.pp' is not a tensor of the checkpoint (did you mean 'mix.p'?)"
        in text
    )
    assert (
        "<mapping>:2:9: error: 'mix1.layernorm.weight' is not a parameter of network 'Flat'" in text
    )
    assert "did you mean 'mix1.layernorm1.weight'?" in text
    assert "<mapping>:3:9: error: 'mix.w' is float [8, 8], 'linear1.weight' is float [3, 8]" in text


def test_leftovers_are_listed_and_allowed_only_when_asked() -> None:
    reference = randomize(ResNet18(classes=1000))
    program = dslnet.load(ROOT / "specs" / "resnet.net")
    with pytest.raises(WeightImportError) as caught:
        program.import_weights(reference.state_dict(), "ResNet18", classes=10, size=64)
    problems = caught.value.problems
    assert len(problems) == 4
    assert (
        "'head1.linear1.weight' [10, 512] (linear): no tensor of the checkpoint fills it"
        in problems[0]
    )
    assert problems[0].startswith(f"{ROOT / 'specs' / 'resnet.net'}:56:59: ")
    assert problems[2].startswith("checkpoint tensor 'fc.weight' [1000, 512] fills no parameter")
    found = program.match_weights(
        reference.state_dict(),
        "ResNet18",
        classes=10,
        size=64,
        allow_unused=True,
        allow_missing=True,
        seed=3,
    )
    assert [s.name for s in found.fresh] == ["head1.linear1.weight", "head1.linear1.bias"]
    assert [t.name for t in found.unused] == ["fc.weight", "fc.bias"]
    assert found.mapping()["layer4.1.bn2.bias"] == "basic_stage4.basic_block2.batchnorm2.bias"
    dropped = program.match_weights(
        reference.state_dict(),
        "ResNet18",
        classes=10,
        size=64,
        mapping={"fc.*": None},
        allow_missing=True,
    )
    assert [t.name for t in dropped.dropped] == ["fc.weight", "fc.bias"]


def test_integer_tensors_nothing_takes_are_left_out_and_listed() -> None:
    reference = randomize(ResNet18(classes=10))
    state = dict(reference.state_dict())
    state["layer1.0.position_index"] = torch.arange(12)  # an index table, not learned
    program = dslnet.load(ROOT / "specs" / "resnet.net")
    found = program.match_weights(state, "ResNet18", classes=10, size=64)
    assert [t.name for t in found.skipped] == ["layer1.0.position_index"]
    assert "left out (integer or bool, not learned): layer1.0.position_index [12]" in found.render()
    state["layer1.0.scale"] = torch.ones(12)  # a float tensor is learned: never left out
    with pytest.raises(WeightImportError, match=r"'layer1\.0\.scale' \[12\] fills no parameter"):
        program.import_weights(state, "ResNet18", classes=10, size=64)


def test_a_transposed_layout_is_never_taken() -> None:
    program = dslnet.loads(FLAT, "flat.net")
    state = Flat().state_dict()
    state["out.weight"] = state["out.weight"].T.contiguous()  # a Conv1D-style [in, out]
    with pytest.raises(WeightImportError) as caught:
        program.import_weights(state, "Flat")
    unfilled = [p for p in caught.value.problems if "'linear1.weight' [3, 8]" in p]
    assert len(unfilled) == 1 and "'out.weight' [8, 3] is its transpose" in unfilled[0]


# --- the command ---------------------------------------------------------------------

RESNET_ARGS = [
    "--spec",
    str(ROOT / "specs" / "resnet.net"),
    "-n",
    "ResNet18",
    "--set",
    "classes=10",
    "--set",
    "size=64",
]


def test_cli_prints_the_mapping_and_writes_the_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = randomize(ResNet18(classes=10))
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    out = tmp_path / "out" / "r18.safetensors"
    code = main(["weights", "import", str(tmp_path / "r18.pth"), *RESNET_ARGS, "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("ResNet18: 122 of 122 tensors from the checkpoint\n")
    assert re.search(
        r"\n  layer3\.0\.downsample\.0\.weight +-> basic_stage3\.basic_block1\.conv2d3"
        r"\.weight +\[256, 128, 1, 1\]\n",
        captured.out,
    )
    assert f"wrote {out}" in captured.err
    assert load_file(out)["stem1.batchnorm1.num_batches_tracked"].shape == ()
    program = dslnet.load(ROOT / "specs" / "resnet.net")
    same_outputs(
        program, "ResNet18", reference, load_file(out), (1, 3, 64, 64), classes=10, size=64
    )


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "r18.safetensors"
    save_file(randomize(ResNet18(classes=1000)).state_dict(), source)
    assert (
        main(
            ["weights", "import", str(source), *RESNET_ARGS, "-o", str(tmp_path / "o.safetensors")]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith(
        f"dslnet: error: {source} does not fit network 'ResNet18' by structure (4 problems):\n"
    )
    assert "checkpoint tensor 'fc.bias' [1000] fills no parameter of 'ResNet18'" in err
    assert not (tmp_path / "o.safetensors").exists()
    assert (
        main(["weights", "import", str(source), *RESNET_ARGS, "--allow-unused", "--allow-missing"])
        == 0
    )
    # a .safetensors file keeps no registration order: its names come in natural order
    assert (
        "unused (--allow-unused): fc.bias [1000], fc.weight [1000, 512]" in capsys.readouterr().out
    )

    assert main(["weights", "import", str(tmp_path / "none.pt"), *RESNET_ARGS]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    assert main(["weights", "import", str(tmp_path / "junk.pt"), *RESNET_ARGS]) == 2
    assert "junk.pt" in capsys.readouterr().err
    assert main(["weights", "import", str(source), *RESNET_ARGS, "--map", str(tmp_path / "m")]) == 2
    assert "no such map file" in capsys.readouterr().err
    assert main(["weights", "import", str(source), *RESNET_ARGS, "-o", str(tmp_path / "o.pt")]) == 2
    assert "FILE.safetensors" in capsys.readouterr().err

    (tmp_path / "bad.map").write_text("fc.weight = head1.linear.weight\nfc.bias\n")
    assert (
        main(["weights", "import", str(source), *RESNET_ARGS, "--map", str(tmp_path / "bad.map")])
        == 1
    )
    err = capsys.readouterr().err
    assert "bad.map:2:1: error: expected 'CHECKPOINT_NAME = NETWORK_NAME'" in err
    assert "   2 | fc.bias\n" in err


TRANSFER = """
network Backbone() {
    in x: float32[N, 3, 16, 16]
    out h = x -> conv2d(8, k=3, p=1, bias=false) -> batchnorm -> relu -> global_avgpool -> flatten
}

network Net() {
    in x: float32[N, 3, 16, 16]
    @freeze
    layer backbone = Backbone()
    out logits = x -> backbone -> linear(3)
}

train Fit() {
    layer net = Net()
    in x: float32[N, 3, 16, 16]
    in y: int64[N]
    out loss = cross_entropy(net(x), y)
    load_weights: [("net.backbone", "backbone.safetensors")]
    epochs: 1
    batch_size: 8
}
"""


class Pretrained(nn.Module):
    """A downloaded model: the backbone, under other names, and a head of 1000 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.classifier = nn.Linear(8, 1000)


def test_transfer_learning_from_an_imported_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "t.net").write_text(TRANSFER)
    pretrained = randomize(Pretrained())
    torch.save(pretrained.state_dict(), tmp_path / "downloaded.pt")
    code = main(
        [
            "weights",
            "import",
            str(tmp_path / "downloaded.pt"),
            "--spec",
            str(tmp_path / "t.net"),
            "-n",
            "Backbone",
            "--allow-unused",
            "-o",
            str(tmp_path / "backbone.safetensors"),
        ]
    )
    assert code == 0
    trainer = Trainer(dslnet.load(tmp_path / "t.net").training("Fit"), samples=16)
    backbone = trainer.layers["net"].backbone
    assert torch.equal(backbone.conv2d1.weight, pretrained.features[0].weight)
    assert torch.equal(backbone.batchnorm1.running_var, pretrained.features[1].running_var)
    trainer.fit()
    assert torch.equal(backbone.conv2d1.weight, pretrained.features[0].weight)  # frozen
    assert torch.equal(backbone.batchnorm1.running_mean, pretrained.features[1].running_mean)


# --- map files that change layouts ---------------------------------------------------


class Conv1DStyle(nn.Module):
    """GPT-2's layout: weights stored [in, out]."""

    def __init__(self) -> None:
        super().__init__()
        self.c_fc = nn.ParameterDict({"weight": torch.zeros(8, 6), "bias": torch.zeros(6)})
        self.c_proj = nn.ParameterDict({"weight": torch.zeros(6, 4), "bias": torch.zeros(4)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def dense(h: torch.Tensor, layer: nn.ParameterDict) -> torch.Tensor:
            return nn.functional.linear(h, layer["weight"].T.contiguous(), layer["bias"])

        return dense(torch.relu(dense(x, self.c_fc)), self.c_proj)


def test_a_map_transposes_what_is_stored_in_out(tmp_path: Path) -> None:
    body = "in x: float32[N, 8]\n    out y = x -> linear(6) -> relu -> linear(4)"
    program = dslnet.loads(f"network MLP() {{\n    {body}\n}}\n")
    reference = randomize(Conv1DStyle())
    with pytest.raises(WeightImportError, match=r"'c_fc\.weight' \[8, 6\] is its transpose"):
        program.import_weights(reference.state_dict(), "MLP")
    (tmp_path / "gpt.map").write_text("transpose c_*.weight   # Conv1D: [in, out]\n")
    found = program.match_weights(reference.state_dict(), "MLP", mapping=tmp_path / "gpt.map")
    assert re.search(r"c_fc\.weight +-> linear1\.weight +\[6, 8\] \(transposed\)", found.render())
    state = program.import_weights(reference.state_dict(), "MLP", mapping=tmp_path / "gpt.map")
    same_outputs(program, "MLP", reference, state, (3, 8))
    (tmp_path / "bad.map").write_text("transpose c_fc.bias\ntranspose nothing.*\nconcat x\n")
    with pytest.raises(CompileError) as caught:
        program.import_weights(reference.state_dict(), "MLP", mapping=tmp_path / "bad.map")
    text = caught.value.render()
    assert "bad.map:3:1: error: 'concat' needs two names or more to join" in text
    with pytest.raises(CompileError) as caught:
        (tmp_path / "bad.map").write_text("transpose c_fc.bias\ntranspose nothing.*\n")
        program.import_weights(reference.state_dict(), "MLP", mapping=tmp_path / "bad.map")
    text = caught.value.render()
    assert "bad.map:1:11: error: 'c_fc.bias' is [6]: only a matrix is transposed" in text
    assert "bad.map:2:11: error: 'nothing.*' matches no tensor" in text


class SeparateQKV(nn.Module):
    """BERT's layout: query, key and value as three layers."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.attn = nn.ModuleDict(
            {name: nn.Linear(d, d) for name in ("query", "key", "value", "out")}
        )


def test_a_map_joins_query_key_and_value(tmp_path: Path) -> None:
    program = dslnet.loads(
        "network Attend() {\n    in x: float32[N, 5, 8]\n"
        "    out y = x -> multihead_attention(2)\n}\n"
    )
    reference = randomize(SeparateQKV())
    (tmp_path / "bert.map").write_text(
        "concat *.query.weight, *.key.weight, *.value.weight\n"
        "concat *.query.bias *.key.bias *.value.bias\n"
    )
    found = program.match_weights(reference.state_dict(), "Attend", mapping=tmp_path / "bert.map")
    assert found.mapping() == {
        "attn.query+key+value.weight": "attn1.in_proj_weight",
        "attn.query+key+value.bias": "attn1.in_proj_bias",
        "attn.out.weight": "attn1.out_proj.weight",
        "attn.out.bias": "attn1.out_proj.bias",
    }
    attn = reference.attn
    expected = torch.cat([attn["query"].weight, attn["key"].weight, attn["value"].weight])
    assert torch.equal(torch.from_numpy(found.weights["attn1.in_proj_weight"]), expected)
    (tmp_path / "bad.map").write_text("concat *.query.weight, *.key.bias, *.out.*\n")
    with pytest.raises(CompileError, match="does not match a tensor for each one"):
        program.import_weights(reference.state_dict(), "Attend", mapping=tmp_path / "bad.map")


def test_api_file_problems_are_weights_errors(tmp_path: Path) -> None:
    from dslnet.ir.weights import WeightsError

    program = dslnet.loads(FLAT, "flat.net")
    with pytest.raises(WeightsError, match="no such weights file"):
        program.import_weights(tmp_path / "none.pt", "Flat")
    with pytest.raises(WeightsError, match="cannot read map file"):
        program.import_weights(Flat().state_dict(), "Flat", mapping=tmp_path / "none.map")


HEADS = """
network Heads(d: int = 8) {
    in h: float32[N, 5, d]
    out mlm = h -> linear(d) -> gelu -> layernorm
    out pooled = h -> select(0, axis=1) -> linear(d) -> tanh
}
"""


class HeadsReference(nn.Module):
    """BERT's heads: the pooler registered before the head the spec writes first."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.pooler = nn.ModuleDict({"dense": nn.Linear(d, d)})
        self.transform = nn.ModuleDict({"dense": nn.Linear(d, d), "LayerNorm": nn.LayerNorm(d)})


def test_names_that_pair_modules_overrule_the_registration_order() -> None:
    program = dslnet.loads(HEADS)
    reference = randomize(HeadsReference())
    mapping = program.match_weights(reference.state_dict(), "Heads").mapping()
    assert mapping["transform.dense.weight"] == "linear1.weight"  # read by the layernorm
    assert mapping["transform.LayerNorm.weight"] == "layernorm1.weight"
    assert mapping["pooler.dense.weight"] == "linear2.weight"


def test_one_tensor_two_parameters_could_take_is_refused() -> None:
    body = "in x: float32[N, 8]\n    out y = x -> linear(8) -> relu -> linear(8)"
    program = dslnet.loads(f"network Two() {{\n    {body}\n}}\n", "two.net")
    state = {k: v for k, v in TwoLayers().state_dict().items() if k.startswith("proj.")}
    with pytest.raises(WeightImportError) as caught:
        program.import_weights(state, "Two")
    assert caught.value.problems[0].startswith(
        "two.net:3:18: 'linear1.weight' [8, 8] (linear): its one candidate, 'proj.weight' "
        "[8, 8], fits 'linear2.weight' as well"
    )


CONVNEXT_PARAMETER = CONVNEXT.replace(
    "    in x: [N, C, H, W]\n    y = x",
    "    in x: [N, C, H, W]\n    layer scale = parameter([c, 1, 1])\n    y = x",
).replace(
    "-> permute([0, 3, 1, 2])\n        -> conv2d(c, k=1, groups=c, bias=false)\n    out x + y",
    "-> permute([0, 3, 1, 2])\n    out x + scale() * y",
)


@pytest.mark.skipif(registry.get("parameter") is None, reason="no parameter op registered")
def test_convnext_layer_scale_as_a_bare_parameter() -> None:
    assert "scale() * y" in CONVNEXT_PARAMETER and "bias=false" not in CONVNEXT_PARAMETER
    reference = randomize(ConvNeXtish())
    program = dslnet.loads(CONVNEXT_PARAMETER)
    state = program.import_weights(reference.state_dict(), "ConvNeXtish")
    same_outputs(program, "ConvNeXtish", reference, state, (2, 3, 32, 32))
    mapping = program.match_weights(reference.state_dict(), "ConvNeXtish").mapping()
    assert mapping["stages.0.gamma"].startswith("cnblock1.scale.")  # [16] as [16, 1, 1]
