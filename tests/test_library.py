"""The spec library: parameter counts users know, summaries, pairs, deep errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import dslnet
from dslnet.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@pytest.mark.parametrize(
    ("spec", "network", "params"),
    [
        ("resnet", "ResNet18", 11_689_512),
        ("resnet", "ResNet34", 21_797_672),
        ("resnet", "ResNet50", 25_557_032),
        ("vgg", "VGG11", 132_863_336),
        ("gan", "DCGANGenerator", 3_576_704),
        ("gan", "DCGANDiscriminator", 2_765_568),
    ],
)
def test_parameter_counts_match_the_published_models(
    spec: str, network: str, params: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", str(SPECS / f"{spec}.net"), "-n", network, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["params"] == params
    assert summary["trainable_params"] == params
    assert {"flops", "inputs", "outputs", "layers"} <= set(summary)


def test_resnet18_flops_are_the_known_1_8_giga_macs() -> None:
    summary = dslnet.load(SPECS / "resnet.net").summary("ResNet18")
    assert summary["macs"] == "1814073344*N"  # 1.81 GMACs per 224x224 image
    assert summary["flops"] == "3628146688*N"  # FLOPs: 2 x MACs
    assert summary["outputs"] == {"logits": {"dtype": "float32", "shape": ["N", 1000]}}


def test_summary_table_groups_by_block_with_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(SPECS / "resnet.net"), "-n", "ResNet18"]) == 0
    out = capsys.readouterr().out
    assert "basic_stage1 (BasicStage)" in out
    assert "params: 11,689,512 (11.7 M); trainable 11,689,512" in out
    assert (
        "MACs (multiply-accumulates) for x: float32[N, 3, 224, 224]: 1,814,073,344*N "
        "(1.81 G per sample)"
    ) in out


def test_shared_encoder_parameters_count_once() -> None:
    prog = dslnet.load(SPECS / "siamese.net")
    siamese = prog.summary("Siamese")
    encoder_params = sum(layer["params"] for layer in siamese["layers"])
    assert siamese["params"] == encoder_params == prog.ir("Siamese").num_parameters
    module = prog.torch("Siamese")
    assert sum(p.numel() for p in module.parameters()) == siamese["params"]


def test_unet_keeps_its_input_size_symbolic() -> None:
    graph = dslnet.load(SPECS / "unet.net").ir("UNet")
    assert str(graph.type_of(graph.outputs[0][1])) == "float32[N, 2, 16*H, 16*W]"
    module = dslnet.load(SPECS / "unet.net").torch("UNet", base=8).eval()
    for size in (32, 48):
        assert module(torch.randn(1, 3, size, size)).shape == (1, 2, size, size)


def test_vae_outputs_reconstruction_mu_logvar_and_is_deterministic_in_eval() -> None:
    module = dslnet.load(SPECS / "autoencoder.net").torch("VAE")
    x = torch.rand(2, 1, 28, 28)
    module.eval()
    first = module(x)
    second = module(x)
    assert [t.shape for t in first] == [(2, 1, 28, 28), (2, 16), (2, 16)]
    torch.testing.assert_close(first[0], second[0])
    module.train()
    torch.manual_seed(0)
    noisy = module(x)[0]
    assert not torch.allclose(noisy, first[0])


def test_generator_and_discriminator_come_as_a_pair() -> None:
    prog = dslnet.load(SPECS / "gan.net")
    generator, discriminator = prog.torch_pair("DCGANGenerator", "DCGANDiscriminator")
    judged = discriminator(generator(torch.randn(2, 100, 1, 1)))
    assert judged.shape == (2, 1) and torch.all((judged > 0) & (judged < 1))
    with pytest.raises(dslnet.CompileError, match=r"makes float32\[N, 3, 64, 64\] but"):
        prog.torch_pair("DCGANGenerator", "CGANDiscriminator")


def test_shape_error_deep_in_a_resnet_stage_names_the_chain_and_both_shapes(
    tmp_path: Path,
) -> None:
    shutil.copy(SPECS / "resnet.net", tmp_path / "resnet.net")
    spec = tmp_path / "broken.net"
    spec.write_text(
        'import "resnet.net"\n'
        "\n"
        "block NoProjection(c: int, stride: int = 1) {\n"
        "    in x: [N, C, H, W]\n"
        "    y = x -> conv2d(c, k=3, s=stride, p=1, bias=false) -> batchnorm\n"
        "    out relu(y + x)\n"
        "}\n"
        "\n"
        "block Stage(c: int, stride: int) {\n"
        "    in x: [N, C, H, W]\n"
        "    out y = x -> NoProjection(c, stride) -> NoProjection(c)\n"
        "}\n"
        "\n"
        "network Broken() {\n"
        "    in x: float32[N, 3, 64, 64]\n"
        "    h = x -> Stem -> BasicStage(64, 2, 1) -> Stage(128, 2)\n"
        "    out logits = h -> Head(10)\n"
        "}\n"
    )
    with pytest.raises(dslnet.CompileError) as err:
        dslnet.load(spec).ir("Broken")
    (diag,) = err.value.diagnostics
    assert diag.span.line == 6
    assert "[N, 128, 8, 8]" in diag.message and "[N, 64, 16, 16]" in diag.message
    chain = [(n.message, n.span.line if n.span else None) for n in diag.notes]
    assert chain == [
        ("in block 'NoProjection' called here", 11),
        ("in block 'Stage' called here", 16),
    ]
