"""`dslnet summary`: MACs and FLOPs, unit prefixes and thousands separators, memory,
folding blocks with --depth, the layer column on a narrow terminal, JSON types."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import dslnet
from dslnet.cli import main
from dslnet.core import console
from dslnet.views.summary import render, table

ROOT = Path(__file__).resolve().parents[1]
RESNET = str(ROOT / "specs" / "resnet.net")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

NESTED = (ROOT / "tests" / "data" / "nested.net").read_text()
# A layer name far wider than a narrow terminal leaves room for.
LONG = "network Long() {\n  in x: float32[N, 8]\n  out y = x -> Wide\n}\n"
LONG_BLOCK = "block Wide {\n  in x: [N, D]\n  out y = x -> linear(features=D)\n}\n"


@pytest.fixture(autouse=True)
def _auto_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "_color", "auto")
    for name in ("FORCE_COLOR", "CLICOLOR_FORCE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def nested(tmp_path: Path) -> str:
    spec = tmp_path / "nested.net"
    spec.write_text(NESTED)
    return str(spec)


def summary_out(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["summary", *argv]) == 0
    return capsys.readouterr().out


def test_macs_column_and_flops_when_asked(nested: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = summary_out([nested], capsys)
    header = out.splitlines()[1].split()
    assert header == ["layer", "op", "output", "shape", "params", "MACs"]
    assert "FLOPs" not in out
    assert "MACs (multiply-accumulates) for x: float32[N, 32]: 4,416*N (4.42 k per sample)" in out
    out = summary_out([nested, "--flops"], capsys)
    assert out.splitlines()[1].split()[-2:] == ["MACs", "FLOPs"]
    assert re.search(r"^linear1 +linear +\[N, 10\] +330 +320\*N +640\*N$", out, re.M)
    assert "FLOPs (2 x MACs): 8,832*N (8.83 k per sample)" in out


def test_unit_prefixes_and_separators_on_a_pipe_and_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    piped = summary_out([RESNET, "-n", "ResNet18", "--depth", "0"], capsys)
    assert "params: 11,689,512 (11.7 M); trainable 11,689,512, buffers 9,620" in piped
    assert ": 1,814,073,344*N (1.81 G per sample)" in piped
    assert re.search(r"^stem1 \(Stem\) +\[N, 64, 56, 56\] +9,536 +118,013,952\*N$", piped, re.M)
    assert main(["--color", "always", "summary", RESNET, "-n", "ResNet18", "--depth", "0"]) == 0
    text = ANSI.sub("", capsys.readouterr().out)
    assert "(1.81 G per sample)" in " ".join(text.split())
    assert re.search(r"│ total +│ +│ +│ 11,689,512 │ 1,814,073,344\*N │", text)


def test_memory_of_parameters_and_of_one_samples_activations(
    nested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = dslnet.load(nested).summary("Net")
    assert summary["param_bytes"] == 4_554 * 4
    # ten [N, 32] outputs and one [N, 10], float32, for N = 1
    assert summary["activation_bytes"] == str((10 * 32 + 10) * 4) == "1320"
    out = summary_out([nested], capsys)
    assert (
        "memory: parameters and buffers 18.2 kB; activations 1.32 kB per sample (every op's "
        "output with N = 1, as a training step keeps them)"
    ) in out


def test_depth_folds_blocks_into_their_totals_row(
    nested: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def names(argv: list[str]) -> list[str]:
        """The layer column of the plain table (its width is the rule's first dashes)."""
        lines = summary_out([nested, *argv], capsys).splitlines()
        width = len(lines[2].split()[0])
        body = lines[3 : next(i for i, line in enumerate(lines) if line.startswith("params:"))]
        return [line[:width].rstrip() for line in body]

    assert names(["--depth", "0"]) == ["outer1 (Outer)", "outer2 (Outer)", "linear1"]
    assert names(["--depth", "1"])[:4] == [
        "outer1 (Outer)",
        "  outer1.inner1 (Inner)",
        "  outer1.inner2 (Inner)",
        "  outer1.add1",
    ]
    every = names([])
    assert every[:3] == [
        "outer1 (Outer)",
        "  outer1.inner1 (Inner)",
        "    outer1.inner1.linear1",
    ]
    assert len(every) == 17
    folded = summary_out([nested, "--depth", "0"], capsys)
    assert re.search(r"^outer1 \(Outer\) +\[N, 32\] +2,112 +2,048\*N$", folded, re.M)
    with pytest.raises(SystemExit):
        main(["summary", nested, "--depth", "-1"])


def test_the_layer_column_is_never_cut_on_a_narrow_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib.net").write_text(LONG_BLOCK.replace("Wide", "VeryLongBlockNameIndeed"))
    spec = tmp_path / "long.net"
    spec.write_text('import "lib.net"\n' + LONG.replace("Wide", "VeryLongBlockNameIndeed"))
    summary = dslnet.load(spec).summary("Long")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for width in (60, 30):
        monkeypatch.setenv("COLUMNS", str(width))
        screen = Terminal()
        console.print_table(table(summary, flops=True), screen)
        text = ANSI.sub("", screen.getvalue())
        assert "very_long_block_name_indeed1 (VeryLongBlockNameIndeed)" in text
        assert "…" not in text
        assert "│ 64*N │ 128*N │" in text  # numbers whole too
    plain = render(summary)
    assert "very_long_block_name_indeed1 (VeryLongBlockNameIndeed)" in plain


def _counts(entry: dict[str, Any]) -> list[Any]:
    return [entry[key] for key in ("macs", "flops", "activation_bytes")]


def test_json_counts_are_always_strings_and_symbolic_says_which(
    nested: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(summary_out([nested, "--json"], capsys))
    assert (doc["macs"], doc["flops"], doc["macs_per_sample"]) == ("4416*N", "8832*N", "4416")
    assert doc["symbolic"] is True and doc["batch_dim"] == "N"
    assert isinstance(doc["params"], int) and isinstance(doc["param_bytes"], int)
    for entry in [doc, *doc["layers"], *doc["blocks"]]:
        assert all(isinstance(count, str) for count in _counts(entry)), entry
    relu = next(layer for layer in doc["layers"] if layer["op"] == "relu")
    assert _counts(relu) == ["0", "0", "128"]
    depths = {b["instance"]: (b["depth"], b["parent"]) for b in doc["blocks"]}
    assert depths["outer1"] == (1, None) and depths["outer1.inner2"] == (2, "outer1")
    fixed = tmp_path / "fixed.net"
    fixed.write_text("network F() {\n  in x: float32[2, 4]\n  out y = x -> linear(features=3)\n}\n")
    doc = json.loads(summary_out([str(fixed), "--json"], capsys))
    assert (doc["macs"], doc["flops"], doc["symbolic"], doc["batch_dim"]) == (
        "24",
        "48",
        False,
        None,
    )


def test_json_of_several_files_is_a_list_naming_each_file(
    nested: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.net"
    other.write_text("network F() {\n  in x: float32[N, 4]\n  out y = x -> relu\n}\n")
    doc = json.loads(summary_out([nested, str(other), "--json"], capsys))
    assert [(d["file"], d["network"]) for d in doc] == [(nested, "Net"), (str(other), "F")]
