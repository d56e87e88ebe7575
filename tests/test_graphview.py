"""`dslnet graph`: the picture model (clusters, folding, shapes, sharing, colours), its
DOT text, and the command (formats, a missing or failing Graphviz, errors)."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest

import dslnet
from dslnet.cli import main
from dslnet.ir.graph import Graph
from dslnet.ops import registry
from dslnet.views.graphfold import BOX_BUDGET, ViewError, ViewOptions, box_count, open_instances
from dslnet.views.graphrender import FAMILY_COLOURS, family_colours, to_dot
from dslnet.views.graphview import Cluster, Picture, pictures

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")

NESTED = """
block Inner(c: int) {
    in x: [N, C, H, W]
    out y = x -> conv2d(c, k=3, p=1) -> batchnorm -> relu
}
block Outer(c: int) {
    in x: [N, C, H, W]
    h = x -> Inner(c) -> Inner(c)
    out y = relu(h + x)
}
network Net(classes: int = 10) {
    in x: float32[N, 8, H, W]
    h = x -> Outer(8) -> Outer(8)
    out y = h -> adaptive_avgpool2d(1) -> flatten -> linear(classes)
}
"""

SHARED = """
block Tower(dim: int) {
    in x: [N, F]
    out z = x -> linear(32) -> relu -> linear(dim)
}
network Pair(dim: int = 16) {
    layer tower = Tower(dim)
    layer head = linear(4)
    in a: float32[N, 64]
    in b: float32[N, 64]
    za = a -> tower
    zb = b -> tower
    out d = pairwise_distance(za, zb)
    out s = head(za) + head(zb)
}
"""

# Fifteen repeats of a small block: more boxes than BOX_BUDGET when all are open.
MANY = """
block Unit(c: int) {
    in x: [N, C]
    out y = x -> linear(c) -> layernorm -> relu
}
block Stage(c: int) {
    in x: [N, C]
    out y = x -> Unit(c) -> Unit(c) -> Unit(c)
}
network Deep(width: int = 16) {
    in x: float32[N, width]
    h = x
    repeat 5 { h = h -> Stage(width) }
    out y = h
}
"""


def graph_of(text: str, network: str, **params: object) -> Graph:
    return dslnet.loads(text, filename="net.net").ir(network, **params)


def picture_of(graph: Graph, **options: object) -> Picture:
    return pictures([graph], ViewOptions(**options))[0]  # type: ignore[arg-type]


def cluster_paths(cluster: Cluster, prefix: str = "") -> list[str]:
    """The clusters under `cluster`, as `outer/inner` paths of their ids."""
    found: list[str] = []
    for child in cluster.children:
        path = f"{prefix}{child.id}"
        found += [path, *cluster_paths(child, path + "/")]
    return found


# --- clusters and folding -----------------------------------------------------------------


def test_every_block_instance_is_a_cluster_nested_as_called() -> None:
    picture = picture_of(graph_of(NESTED, "Net"))
    assert cluster_paths(picture.root) == [
        "cluster_outer1",
        "cluster_outer1/cluster_outer1.inner1",
        "cluster_outer1/cluster_outer1.inner2",
        "cluster_outer2",
        "cluster_outer2/cluster_outer2.inner1",
        "cluster_outer2/cluster_outer2.inner2",
    ]
    inner = picture.root.children[0].children[0]
    assert (inner.label.title, inner.label.detail) == ("inner1", "Inner(c=8)")
    assert inner.boxes == [
        "layer:outer1.inner1.conv2d1",
        "layer:outer1.inner1.batchnorm1",
        "layer:outer1.inner1.relu1",
    ]
    text = to_dot([graph_of(NESTED, "Net")])
    assert text.count("subgraph ") == 6
    assert 'subgraph "cluster_outer2.inner1" {' in text


def test_block_titles_sit_beside_the_first_box_not_across_the_edges() -> None:
    text = to_dot([graph_of(NESTED, "Net")])
    # Graphviz draws incoming edges across a cluster's own label: the title is a node.
    assert 'subgraph "cluster_outer1.inner1" {\n      graph [label="",' in text
    title = '"cluster_outer1.inner1:title"'
    assert f'{title} [label=<<B>inner1</B>  Inner(c=8)<BR ALIGN="LEFT"/>' in text
    assert f'{{rank=same; "layer:outer1.inner1.conv2d1"; {title}}}' in text
    # A block holding blocks first: its title goes beside its first block's title.
    assert '{rank=same; "cluster_outer1.inner1:title"; "cluster_outer1:title"}' in text


def test_depth_folds_deeper_instances_into_one_box_each() -> None:
    graph = graph_of(NESTED, "Net")
    folded = picture_of(graph, depth=1)
    assert cluster_paths(folded.root) == ["cluster_outer1", "cluster_outer2"]
    box = folded.boxes["block:outer1.inner2"]
    assert box.kind == "block"
    assert (box.label.title, box.label.detail) == ("inner2", "Inner(c=8)")
    assert folded.folded == {"Inner": 4}
    # The folded box keeps the shapes going in and out.
    into = [e for e in folded.edges if e.dst == "block:outer1.inner2"]
    assert [(e.src, e.shape) for e in into] == [("block:outer1.inner1", "[N, 8, H, W]")]
    flat = picture_of(graph, depth=0)
    assert flat.root.children == []
    assert [b for b in flat.boxes if b.startswith("block:")] == ["block:outer1", "block:outer2"]


def test_negative_depth_is_refused() -> None:
    with pytest.raises(ViewError, match="--depth must be 0 or more"):
        picture_of(graph_of(NESTED, "Net"), depth=-1)


def test_expand_opens_only_that_block_and_what_holds_it() -> None:
    graph = graph_of(NESTED, "Net")
    by_type = picture_of(graph, expand=("Inner",))
    assert len(cluster_paths(by_type.root)) == 6
    only_outer = picture_of(graph, expand=("Outer",))
    assert cluster_paths(only_outer.root) == ["cluster_outer1", "cluster_outer2"]
    one = picture_of(graph, expand=("outer2.inner1",))
    assert cluster_paths(one.root) == ["cluster_outer2", "cluster_outer2/cluster_outer2.inner1"]
    assert "block:outer1" in one.boxes and "block:outer2.inner2" in one.boxes


def test_expand_names_a_missing_block_with_a_suggestion() -> None:
    with pytest.raises(ViewError, match=r"--expand Iner: .* \(did you mean 'Inner'\?\)"):
        picture_of(graph_of(NESTED, "Net"), expand=("Iner",))


def test_small_networks_are_drawn_whole_by_default() -> None:
    graph = graph_of(NESTED, "Net")
    everything = frozenset(f.instance for node in graph.nodes for f in node.chain)
    assert open_instances(graph, ViewOptions()) == everything


def test_big_networks_fold_all_but_one_example_of_each_block() -> None:
    graph = graph_of(MANY, "Deep")
    everything = frozenset(f.instance for node in graph.nodes for f in node.chain)
    assert box_count(graph, everything) > BOX_BUDGET
    opened = open_instances(graph, ViewOptions())
    # Stages hold blocks: all open; of the fifteen Units only the first is.
    assert opened == {"stage1", "stage2", "stage3", "stage4", "stage5", "stage1.unit1"}
    assert box_count(graph, opened) <= BOX_BUDGET
    text = to_dot([graph])
    assert "folded into boxes: Unit \u00d714" in text


def test_resnet18_default_picture_fits_the_budget_and_shows_one_residual_block() -> None:
    graph = dslnet.load(SPECS / "resnet.net").ir("ResNet18")
    opened = open_instances(graph, ViewOptions())
    assert "basic_stage1.basic_block1" in opened
    assert "basic_stage2.basic_block1" not in opened
    assert {f"basic_stage{i}" for i in range(1, 5)} <= opened
    assert box_count(graph, opened) <= BOX_BUDGET


# --- edges, shapes, sharing ---------------------------------------------------------------


def test_edges_carry_shapes_with_symbolic_dims_by_name() -> None:
    picture = picture_of(graph_of(NESTED, "Net"))
    edge = next(e for e in picture.edges if e.src == "in:x")
    assert (edge.dst, edge.shape) == ("layer:outer1.inner1.conv2d1", "[N, 8, H, W]")
    last = next(e for e in picture.edges if e.dst == "out:y")
    assert last.shape == "[N, 10]"
    text = to_dot([graph_of(NESTED, "Net")])
    assert '"layer:linear1" -> "out:y" [label="[N, 10]"' in text


def test_the_dtype_shows_when_it_is_not_float32_and_outputs_are_named() -> None:
    graph = dslnet.load(SPECS / "seq2seq.net").ir("LSTMSeq2Seq")
    text = to_dot([graph])
    assert '"in:source" -> "layer:embedding1" [label="int64[N, S]"' in text
    assert '"layer:lstm1" -> "layer:lstm2" [label="h: [2, N, 512]"' in text
    assert '"layer:lstm1" -> "layer:lstm2" [label="c: [2, N, 512]"' in text


def test_a_shared_block_is_one_cluster_with_an_edge_set_per_use() -> None:
    picture = picture_of(graph_of(SHARED, "Pair"))
    tower = picture.root.children[0]
    assert tower.id == "cluster_tower"
    assert tower.label.uses == 2
    assert [c.id for c in picture.root.children] == ["cluster_tower"]  # drawn once
    into = [(e.src, e.use) for e in picture.edges if e.dst == "layer:tower.linear1"]
    assert into == [("in:a", "1"), ("in:b", "2")]
    # Inside, each edge is drawn once, for every use.
    inner = [e for e in picture.edges if e.dst == "layer:tower.relu1"]
    assert len(inner) == 1 and inner[0].use == ""
    text = to_dot([graph_of(SHARED, "Pair")])
    assert "shared \u00d72" in text
    assert re.search(r'"in:b" -> "layer:tower.linear1" \[label=<.*use 2', text)


def test_a_shared_layer_is_one_box_used_twice() -> None:
    picture = picture_of(graph_of(SHARED, "Pair"))
    head = picture.boxes["layer:head"]
    assert (head.label.title, head.label.detail, head.label.uses) == ("head", "linear 4", 2)
    # From each use of the tower to the same use of the head: one edge stands for both.
    into = [(e.src, e.use) for e in picture.edges if e.dst == "layer:head"]
    assert into == [("layer:tower.linear2", "")]
    out = [(e.dst, e.use) for e in picture.edges if e.src == "layer:head"]
    assert out == [("layer:add1", "1"), ("layer:add1", "2")]
    assert sum(1 for b in picture.boxes if b.startswith("layer:head")) == 1


def test_a_layer_applied_to_its_own_output_loops_from_one_use_to_the_next() -> None:
    text = (
        "network Loop() {\n layer fc = linear(4)\n in x: float32[N, 4]\n out y = x -> fc -> fc\n}"
    )
    picture = picture_of(graph_of(text, "Loop"))
    assert [(e.src, e.dst, e.use) for e in picture.edges] == [
        ("in:x", "layer:fc", "1"),
        ("layer:fc", "layer:fc", "1\u21922"),
        ("layer:fc", "out:y", "2"),
    ]


def test_unnamed_layers_show_their_op_named_ones_their_name() -> None:
    picture = picture_of(dslnet.load(SPECS / "transformer.net").ir("GPT"))
    assert picture.boxes["layer:tok"].label.title == "tok"
    conv = picture_of(graph_of(NESTED, "Net")).boxes["layer:outer1.inner1.conv2d1"]
    assert (conv.label.title, conv.label.detail) == ("conv2d", "8, k=3, p=1")


# --- colours, several networks, the DOT text ------------------------------------------------


def test_layers_are_coloured_by_their_op_family() -> None:
    graph = graph_of(NESTED, "Net")
    text = to_dot([graph])
    for node in graph.nodes:
        op = registry.get(node.op)
        assert op is not None
        fill, _ = family_colours(op.family)
        line = next(s for s in text.splitlines() if s.strip().startswith(f'"layer:{node.module}"'))
        assert f'fillcolor="{fill}"' in line
    assert family_colours("conv") != family_colours("norm")
    assert "<TD BGCOLOR=" in text  # the key to the colours


def test_every_builtin_op_family_has_its_colours() -> None:
    families = {op.family for op in registry.builtin_ops().values()}
    assert families <= set(FAMILY_COLOURS)


def test_an_unknown_family_gets_a_stable_colour() -> None:
    assert family_colours("quantum") == family_colours("quantum")
    assert family_colours("quantum") not in FAMILY_COLOURS.values()


def test_several_networks_are_drawn_side_by_side_with_their_joins_noted() -> None:
    program = dslnet.load(SPECS / "gan.net")
    graphs = [program.ir("DCGANGenerator"), program.ir("DCGANDiscriminator")]
    made, judged = pictures(graphs, ViewOptions())
    assert made.boxes["DCGANGenerator/out:image"].label.notes == (
        "\u2192 DCGANDiscriminator.image",
    )
    assert judged.boxes["DCGANDiscriminator/in:image"].label.notes == (
        "\u2190 DCGANGenerator.image",
    )
    text = to_dot(graphs)
    assert 'subgraph "cluster_DCGANGenerator/DCGANGenerator" {' in text
    assert 'subgraph "cluster_DCGANDiscriminator/DCGANDiscriminator" {' in text


def test_expand_with_several_networks_folds_those_without_the_block() -> None:
    a = graph_of(NESTED, "Net")
    b = graph_of(SHARED, "Pair")
    nested, shared = pictures([a, b], ViewOptions(expand=("Inner",)))
    assert len(cluster_paths(nested.root)) == 6
    assert shared.root.children == [] and "Pair/block:tower" in shared.boxes


def test_dot_text_is_deterministic_and_takes_the_direction() -> None:
    graph = dslnet.load(SPECS / "resnet.net").ir("ResNet18")
    first = to_dot([graph], ViewOptions(direction="LR"))
    assert first == to_dot(
        [dslnet.load(SPECS / "resnet.net").ir("ResNet18")], ViewOptions(direction="LR")
    )
    assert "rankdir=LR" in first


@needs_dot
def test_graphviz_takes_every_library_network(spec_files: list[Path], tmp_path: Path) -> None:
    """Every spec's picture is DOT (and HTML-like labels) that dot lays out."""
    for spec in spec_files:
        out = tmp_path / f"{spec.stem}.svg"
        assert main(["graph", str(spec), "--all", "-o", str(out)]) == 0, spec.name
        assert "<svg" in out.read_text()


def test_program_dot_is_what_the_command_writes(capsys: pytest.CaptureFixture[str]) -> None:
    program = dslnet.load(SPECS / "resnet.net")
    text = program.dot("ResNet18", block_depth=1, classes=10)
    argv = ["graph", str(SPECS / "resnet.net"), "-n", "ResNet18", "--depth", "1"]
    assert main([*argv, "--set", "classes=10"]) == 0
    assert capsys.readouterr().out == text
    assert "[N, 10]" in text and "block:basic_stage1.basic_block1" in text


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH where Graphviz cannot be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_dot_output_needs_no_graphviz(no_dot: None, tmp_path: Path) -> None:
    out = tmp_path / "mlp.dot"
    assert main(["graph", str(SPECS / "mlp.net"), "-n", "MLP", "-o", str(out)]) == 0
    assert out.read_text().startswith('digraph "MLP" {')
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_rendering_without_graphviz_says_how_to_install_it(
    no_dot: None, suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"mlp{suffix}"
    assert main(["graph", str(SPECS / "mlp.net"), "-n", "MLP", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Graphviz" in err and "apt-get install graphviz" in err
    assert "brew install graphviz" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "empty-bin"]  # no file, not even a part


def test_a_failing_graphviz_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "out" / "mlp.svg"
    assert main(["graph", str(SPECS / "mlp.net"), "-n", "MLP", "-o", str(out)]) == 2
    assert "Graphviz's dot failed (exit 1): Error: syntax error in line 1" in (
        capsys.readouterr().err
    )
    assert not out.exists()


@needs_dot
def test_svg_and_png_are_rendered(tmp_path: Path) -> None:
    spec = str(SPECS / "resnet.net")
    svg, png = tmp_path / "r.svg", tmp_path / "r.png"
    assert main(["graph", spec, "-n", "ResNet18", "-o", str(svg)]) == 0
    assert "<svg" in svg.read_text() and "basic_block1" in svg.read_text()
    assert main(["graph", spec, "-n", "ResNet18", "-o", str(png), "--direction", "LR"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_the_gan_pair_renders(tmp_path: Path) -> None:
    out = tmp_path / "pair.svg"
    spec = str(SPECS / "gan.net")
    argv = ["graph", spec, "-n", "DCGANGenerator", "-n", "DCGANDiscriminator", "-o", str(out)]
    assert main(argv) == 0
    assert "DCGANGenerator.image" in out.read_text()


def test_without_o_the_dot_text_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(SPECS / "siamese.net"), "-n", "Siamese", "--depth", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "Siamese" {') and out.rstrip().endswith("}")
    assert '"block:enc"' in out and "shared \u00d72" in out


def test_all_draws_every_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(SPECS / "mlp.net"), "--all"]) == 0
    out = capsys.readouterr().out
    assert 'digraph "MLP + ResidualMLP" {' in out
    assert '"cluster_ResidualMLP/ResidualMLP"' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.jpg"], "unknown picture format '.jpg' (use one of .dot, .gv, .svg, .png)"),
        ([], "choose a network with -n NET (repeat -n, or give --all"),
        (["-n", "MPL"], "no network 'MPL' (did you mean 'MLP'?); this spec has: MLP, ResidualMLP"),
        (["-n", "MLP", "--all"], "give either -n NET or --all, not both"),
        (["-n", "MLP", "--expand", "Block"], "--expand Block: no block or instance 'Block'"),
        (["-n", "MLP", "--depth", "-2"], "--depth must be 0 or more, got -2"),
        (["-n", "MLP", "--set", "hidden=wide"], "--set hidden: expected int, got 'wide'"),
        (["--all", "--set", "nope=1"], "--set nope: none of MLP, ResidualMLP has a parameter"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # where a wrongly written x.jpg would land
    assert main(["graph", str(SPECS / "mlp.net"), *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = blocker / "mlp.dot"
    assert main(["graph", str(SPECS / "mlp.net"), "-n", "MLP", "-o", str(out)]) == 2
    assert f"cannot write {out}" in capsys.readouterr().err


def test_spec_errors_are_located_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text("network A() {\n  in x: float32[N, 4]\n  out y = x -> relux\n}\n")
    out = tmp_path / "a.dot"
    assert main(["graph", str(bad), "-o", str(out)]) == 1
    assert f"{bad}:3:16: error: unknown op or block 'relux'" in capsys.readouterr().err
    assert not out.exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
