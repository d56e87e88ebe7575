"""The reduction options: one table (dslnet/passes/options.py) that `Options`,
`Program.optimize` and `dslnet compile`'s flags all follow, checked values, and the
options that were once unreachable (sparsity_scope, lowrank_exclude) doing something."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import dslnet
from dslnet import api
from dslnet.cli import build_parser, main
from dslnet.passes.options import (
    OptionError,
    Options,
    OptionTypeError,
    OptionValueError,
    default,
    flagged,
    table,
)

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "specs" / "mlp.net")

# A value other than the default for every option: a new option must add one here.
SAMPLES: dict[str, Any] = {
    "fold": True,
    "prune": 0.25,
    "prune_by": "l2",
    "prune_scope": "global",
    "prune_ratios": {"linear1": 0.5},
    "exclude": ("linear3",),
    "lowrank": 0.9,
    "lowrank_rank": 4,
    "lowrank_exclude": ("linear2",),
    "sparsity": 0.5,
    "sparsity_scope": "global",
    "quantize": "int8-static",
    "calibrate": "inputs.npz",
    "calibration_method": "entropy",
    "calibration_samples": 3,
}


def _compile_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = commands.choices["compile"]
    return parser


# --- one table -----------------------------------------------------------------------


def test_every_option_has_a_sample_and_a_spec() -> None:
    assert list(SAMPLES) == list(table())
    for name, value in SAMPLES.items():
        assert value != default(name)
        assert table()[name].help


def test_program_optimize_takes_exactly_the_table_in_order() -> None:
    params = inspect.signature(api.Program.optimize).parameters.values()
    keywords = [p for p in params if p.kind is p.KEYWORD_ONLY and p.name != "seed"]
    fields = {f.name: f for f in dataclasses.fields(Options)}
    assert [p.name for p in keywords] == list(table())
    for p in keywords:
        assert p.default == default(p.name), p.name
        assert p.annotation == fields[p.name].type, p.name  # the same spelling of the type
    doc = inspect.getdoc(api.Program.optimize) or ""
    assert [name for name in table() if name not in doc] == []


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_keyword_reaches_the_options(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[Options] = []
    monkeypatch.setattr(api, "optimize", lambda graph, options, *rest: got.append(options))
    dslnet.load(MLP).optimize("MLP", **{name: SAMPLES[name]})
    assert getattr(got[0], name) == SAMPLES[name]
    others = {n: getattr(got[0], n) for n in table() if n != name}
    assert others == {n: default(n) for n in others}


def test_the_compile_flags_are_the_table() -> None:
    actions = {a.dest: a for a in _compile_parser()._actions}
    for name, spec in flagged():
        action = actions[name]
        assert action.option_strings == [spec.flag]
        assert action.help == spec.help
        assert action.metavar == spec.metavar
        assert tuple(action.choices or ()) == spec.kind.choices
        assert action.default == ([] if spec.kind.repeatable else default(name))
    group = next(g for g in _compile_parser()._action_groups if g.title == "model reduction")
    shown = [a.option_strings[0] for a in group._group_actions]
    assert shown == [spec.flag for _, spec in flagged()] + ["--report"]
    assert [n for n in table() if table()[n].flag is None] == ["prune_ratios"]  # a mapping


def test_flags_become_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from dslnet.cli.reduction import options_from

    words: list[str] = []
    for name, spec in flagged():
        value = SAMPLES[name]
        if name == "lowrank":  # lowrank_rank is given: not both
            continue
        if value is True:
            words.append(str(spec.flag))
        elif isinstance(value, tuple):
            words += [w for v in value for w in (str(spec.flag), v)]
        else:
            words += [str(spec.flag), str(value)]
    args = _compile_parser().parse_args([*words, MLP])
    expected = {n: v for n, v in SAMPLES.items() if table()[n].flag and n != "lowrank"}
    assert options_from(args) == Options(**expected)


# --- checked values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"prune": 1.5}, OptionValueError, "prune must be a ratio in [0, 1), got 1.5"),
        ({"prune": "0.5"}, OptionTypeError, "prune must be a ratio in [0, 1), got '0.5'"),
        ({"prune_by": "l3"}, OptionValueError, "prune_by must be one of 'l1', 'l2', 'bn' or a"),
        ({"prune_scope": "all"}, OptionValueError, "prune_scope must be one of 'layer', 'glo"),
        ({"prune_ratios": {"a*": 1.0}}, OptionValueError, "prune_ratios must be a mapping"),
        ({"exclude": "head"}, OptionTypeError, "exclude must be a list of module patterns"),
        ({"lowrank": 0.0}, OptionValueError, "lowrank must be a number in (0, 1], got 0.0"),
        ({"lowrank_rank": 0}, OptionValueError, "lowrank_rank must be an integer rank of at"),
        ({"lowrank_rank": 1.5}, OptionValueError, "lowrank_rank must be an integer rank of"),
        ({"lowrank_rank": True}, OptionTypeError, "lowrank_rank must be an integer rank"),
        ({"lowrank_exclude": [1]}, OptionTypeError, "lowrank_exclude must be a list of module"),
        ({"sparsity": -0.1}, OptionValueError, "sparsity must be a ratio in [0, 1), got -0.1"),
        ({"sparsity_scope": "net"}, OptionValueError, "sparsity_scope must be one of 'layer',"),
        ({"sparsity_scope": None}, OptionTypeError, "sparsity_scope must be one of 'layer', "),
        ({"quantize": "int4"}, OptionValueError, "quantize must be one of 'fp16', 'int8-dyna"),
        ({"calibrate": 3}, OptionTypeError, "calibrate must be a file name, got 3"),
        ({"calibration_method": "max"}, OptionValueError, "calibration_method must be one of"),
        ({"calibration_samples": 0}, OptionValueError, "calibration_samples must be a positive"),
        ({"fold": 1}, OptionTypeError, "fold must be True or False, got 1"),
        ({"lowrank": 0.9, "lowrank_rank": 4}, OptionValueError, "give lowrank or lowrank_rank"),
    ],
)
def test_bad_values_name_the_option_and_what_it_takes(
    options: dict[str, Any], error: type[OptionError], message: str
) -> None:
    with pytest.raises(error) as raised:
        Options(**options)
    assert str(raised.value).startswith(message)
    assert raised.value.option == next(iter(options))
    assert isinstance(raised.value, TypeError if error is OptionTypeError else ValueError)


def test_program_optimize_refuses_a_bad_value_before_compiling() -> None:
    scope: Any = "everywhere"
    with pytest.raises(ValueError, match="sparsity_scope must be one of 'layer', 'global'"):
        dslnet.load(MLP).optimize("NoSuchNetwork", sparsity=0.5, sparsity_scope=scope)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--sparsity", "0.5", "--sparsity-scope", "all"], "argument --sparsity-scope: invalid"),
        (["--prune", "1.5"], "argument --prune: expected a ratio in [0, 1), got '1.5'"),
        (["--lowrank", "2"], "argument --lowrank: expected a number in (0, 1], got '2'"),
        (["--lowrank-rank", "x"], "argument --lowrank-rank: expected an integer rank"),
        (["--lowrank", "0.9", "--lowrank-rank", "4"], "give --lowrank or --lowrank-rank, not"),
    ],
)
def test_bad_flags_are_usage_errors(
    flags: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["compile", MLP, "-n", "MLP", *flags])
    except SystemExit as exited:  # argparse's own usage error
        code = int(str(exited.code))
    err = capsys.readouterr().err
    assert code == 2 and said in err and "Traceback" not in err


# --- options that were unreachable -----------------------------------------------------


def _zeros(weights: Any, name: str) -> float:
    return float(np.mean(np.asarray(weights[name]) == 0))


def test_sparsity_scope_global_ranks_all_weights_together() -> None:
    prog = dslnet.load(MLP)
    per_layer = prog.optimize("MLP", sparsity=0.5).weights
    pooled = prog.optimize("MLP", sparsity=0.5, sparsity_scope="global").weights
    names = ["linear1.weight", "linear2.weight", "linear3.weight"]
    assert [_zeros(per_layer, n) for n in names] == pytest.approx([0.5] * 3, abs=0.01)
    # Fresh weights scale as 1/sqrt(fan-in): the 784-wide first layer is the smallest,
    # so ranked together it loses more than half and the others less.
    assert _zeros(pooled, "linear1.weight") > 0.55
    assert _zeros(pooled, "linear2.weight") < 0.45


def test_sparsity_scope_flag(tmp_path: Path) -> None:
    zeros = {}
    for scope in ("layer", "global"):
        out = tmp_path / f"{scope}.py"
        args = ["compile", MLP, "-n", "MLP", "--emit", "torch", "-o", str(out), "--sparsity", "0.5"]
        assert main([*args, "--sparsity-scope", scope]) == 0
        zeros[scope] = _zeros(load_file(out.with_suffix(".safetensors")), "linear1.weight")
    assert zeros["layer"] == pytest.approx(0.5, abs=0.01) and zeros["global"] > 0.55


def test_lowrank_exclude_keeps_a_layer_whole() -> None:
    prog = dslnet.load(MLP)
    # MLP(hidden=64): linear1 784->64, linear2 64->64, linear3 the head (kept anyway).
    factorised = prog.optimize("MLP", hidden=64, lowrank_rank=0.25)
    kept = prog.optimize("MLP", hidden=64, lowrank_rank=0.25, lowrank_exclude=["linear2"])
    assert {"linear1_down", "linear2_down"} <= {n.module for n in factorised.graph.nodes}
    modules = {n.module for n in kept.graph.nodes}
    assert "linear1_down" in modules and "linear2" in modules and "linear2_down" not in modules
    assert kept.weights["linear2.weight"].shape == (64, 64)


# --- the docs name every option --------------------------------------------------------


def test_docs_name_every_option_and_flag() -> None:
    embedding = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [n for n in table() if f"`{n}" not in embedding] == []
    assert [spec.flag for _, spec in flagged() if f"{spec.flag} " not in readme] == []


def test_train_declarations_offer_the_same_quantizations() -> None:
    # The front end checks `quantize:` in a train declaration and may not import the
    # passes (the layering): its own list must stay this one.
    from dslnet.frontend.train.setting_values import QUANTIZATIONS as TRAIN_QUANTIZATIONS
    from dslnet.passes.options import QUANTIZATIONS

    assert TRAIN_QUANTIZATIONS == QUANTIZATIONS


def test_a_misspelt_option_is_not_taken_for_a_network_parameter() -> None:
    prog = dslnet.load(MLP)
    with pytest.raises(TypeError, match="did you mean the option 'sparsity_scope'") as raised:
        prog.optimize("MLP", sparsity=0.5, sparsity_scop="global")
    assert str(raised.value).startswith("sparsity_scop is neither an option nor a parameter")
    with pytest.raises(dslnet.CompileError, match="did you mean 'hidden'"):
        prog.optimize("MLP", hiden=8)  # closest to a parameter: the front end says so
    assert prog.optimize("MLP", hidden=8, sparsity=0.5).graph.num_parameters < 10_000


def test_the_pass_report_is_printed_only_with_report(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compile", MLP, "-n", "MLP", "--fold", "--emit", "ir-opt"]
    assert main(args) == 0
    assert "canonicalize:" not in capsys.readouterr().err
    assert main([*args, "--report"]) == 0
    assert "canonicalize: removed 2 eval-mode identities" in capsys.readouterr().err
