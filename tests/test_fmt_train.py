"""`dslnet fmt` and the editor grammar on `train` declarations: step blocks, settings
(`name: value`) and annotated inputs (`@noise in z: ...`)."""

from __future__ import annotations

import json
import random
import re
import textwrap
from pathlib import Path

import pytest

from dslnet.cli import main
from dslnet.editor import textmate_grammar, textmate_json
from dslnet.frontend.format import format_source
from dslnet.frontend.format.doc import WIDTH
from dslnet.frontend.parser import concrete_syntax

ROOT = Path(__file__).resolve().parents[1]


def spec(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def fmt(text: str) -> str:
    return format_source(text, "train.net")


def comments(text: str) -> list[str]:
    """The comments of `text`, in order (a `#` only ever starts one in these specs)."""
    return [c.rstrip() for c in re.findall(r"#[^\n]*", text)]


def check_keeps_meaning(source: str, formatted: str) -> None:
    assert fmt(formatted) == formatted  # twice-stable
    assert concrete_syntax(formatted)[0] == concrete_syntax(source)[0]  # positions aside
    assert comments(formatted) == comments(source)


# Canonical already: formatting it must change nothing.
DCGAN = spec(
    """
    train DCGAN(z: int = 100) {
        layer G = DCGANGenerator(z)
        layer D = DCGANDiscriminator()
        @noise in noise: float32[N, z, 1, 1]  # drawn afresh each step
        in image: float32[N, 3, 64, 64]
        batch_size: 64

        step discriminator {  # one optimizer step
            real = D(image)
            fake = D(G(noise) -> detach)
            out loss = bce_loss(real, full_like(real, 0.9)) + bce_loss(fake, zeros_like(fake))
            optimizer: adam(lr=2e-4, betas=[0.5, 0.999])
            update: [D]
        }
        step generator {
            score = D(G(noise))
            out loss = bce_loss(score, ones_like(score))
            optimizer: adam(lr=2e-4, betas=[0.5, 0.999])
            update: [G]
            times: 2
        }
    }
    """
)


def test_a_canonical_train_spec_is_left_as_it_is() -> None:
    assert fmt(DCGAN) == DCGAN


def test_messy_train_declarations_come_out_tidy() -> None:
    messy = (
        "train   Classify( epochs:int=5 ,){layer net=MNISTNet( )\n"
        "   in images :float32[ N,1,28,28, ];in labels:int64[N]\n"
        "      logits=net( images )\n"
        "out loss=cross_entropy(logits,labels)\n\n\n\n"
        "  optimizer :adam( lr=1e-3,weight_decay=1e-4 )\n"
        "schedule:cosine(warmup=100);batch_size  :64\n"
        "        epochs:epochs\n"
        "}\n"
    )
    formatted = fmt(messy)
    assert formatted == spec(
        """
        train Classify(epochs: int = 5) {
            layer net = MNISTNet()
            in images: float32[N, 1, 28, 28]
            in labels: int64[N]
            logits = net(images)
            out loss = cross_entropy(logits, labels)

            optimizer: adam(lr=1e-3, weight_decay=1e-4)
            schedule: cosine(warmup=100)
            batch_size: 64
            epochs: epochs
        }
        """
    )
    check_keeps_meaning(messy, formatted)


def test_messy_step_blocks_and_annotated_inputs_come_out_tidy() -> None:
    messy = (
        "@freeze train   GAN(){\n"
        "layer G=Gen();layer D=Disc()\n"
        "@noise   in  z:float32[N,8]\n"
        "   @noise\n"
        "in w:[N,2]\n"
        "step   d{out loss=D(G(z))\n"
        "update:[D];times:2}\n"
        "\n\n"
        "  step g {  update : [G] }\n"
        "step h {\n}\n"
        "}"
    )
    formatted = fmt(messy)
    assert formatted == spec(
        """
        @freeze train GAN() {
            layer G = Gen()
            layer D = Disc()
            @noise in z: float32[N, 8]
            @noise
            in w: [N, 2]
            step d {
                out loss = D(G(z))
                update: [D]
                times: 2
            }

            step g { update: [G] }
            step h {}
        }
        """
    )
    check_keeps_meaning(messy, formatted)


def test_long_settings_break_inside_their_brackets_and_lone_ones_stay_on_the_brace_line() -> None:
    names = ", ".join(f"network_number_{k}" for k in range(8))
    source = f"train T() {{\n  update: [{names}]\n}}\ntrain U() {{ seed: 0 }}\n"
    formatted = fmt(source)
    assert formatted == spec(
        """
        train T() {
            update: [network_number_0, network_number_1, network_number_2, network_number_3,
                     network_number_4, network_number_5, network_number_6, network_number_7]
        }
        train U() { seed: 0 }
        """
    )
    assert max(len(line) for line in formatted.splitlines()) <= WIDTH
    check_keeps_meaning(source, formatted)


# Comments in every gap that may hold one: before and after declarations, after each
# `{`, between and after statements, on the annotation's line, inside brackets,
# before an arrow, at the end of step and train bodies.
COMMENTED = """\
# file head
@freeze   # on the annotation
train T( # params
  a:int=1 ,  # first
  b:float=2.0,) {   # opens train
  # lead
  layer net=N( a )
    @noise   # on noise
  in z :float32[ N,a ]   # noise
      in   x:[N,3];in y:int64[N]

    # before loss
  out loss=mse_loss( net(x) ,  # inner
     y)   # after loss
  optimizer :adam( lr=1e-3 ,  # lr
     betas=[0.5,0.999,] )   # opt
  batch_size:64;seed :0  # two settings
  step   d{# opens step
      out loss = net(x)
          # before the arrow
           -> mean
      update:[ net ]   # trailing
      # last in step
  }  # closes step
  step g { times: 2 }  # one-liner
  # last in train
}   # closes train
# file end
"""


def test_every_comment_of_a_train_spec_is_kept_in_place() -> None:
    formatted = fmt(COMMENTED)
    assert formatted == spec(
        """
        # file head
        @freeze                    # on the annotation
        train T(                   # params
                a: int = 1,        # first
                b: float = 2.0) {  # opens train
            # lead
            layer net = N(a)
            @noise               # on noise
            in z: float32[N, a]  # noise
            in x: [N, 3]
            in y: int64[N]

            # before loss
            out loss = mse_loss(net(x),          # inner
                                y)               # after loss
            optimizer: adam(lr=1e-3,             # lr
                            betas=[0.5, 0.999])  # opt
            batch_size: 64
            seed: 0   # two settings
            step d {  # opens step
                out loss = net(x)
                    # before the arrow
                    -> mean
                update: [net]  # trailing
                # last in step
            }                    # closes step
            step g { times: 2 }  # one-liner
            # last in train
        }  # closes train
        # file end
        """
    )
    check_keeps_meaning(COMMENTED, formatted)


def relaid(text: str, rng: random.Random) -> str:
    """`text` with each line indented at random and 0 to 2 spaces more before each token
    (line breaks, blank lines and comments kept)."""
    out, end = [], 0
    for token in concrete_syntax(text)[1]:
        gap = text[end : token.start_pos]
        gap = re.sub(r"\n[ ]*", lambda _: "\n" + " " * rng.randrange(9), gap)
        out.append(gap + " " * rng.randrange(3) + token)
        end = token.end_pos or 0
    return "".join(out) + text[end:]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("source", [DCGAN, COMMENTED], ids=["dcgan", "commented"])
def test_the_layout_the_user_chose_does_not_matter(source: str, seed: int) -> None:
    messy = relaid(source, random.Random(seed))
    assert messy != source
    assert fmt(messy) == fmt(source)


def test_step_stays_an_ordinary_name_outside_train_declarations() -> None:
    source = "network N(){in x:[N]\nstep=x->relu;out step}\n"
    assert fmt(source) == "network N() {\n    in x: [N]\n    step = x -> relu\n    out step\n}\n"


def test_fmt_check_accepts_tidy_train_files_and_flags_messy_ones(tmp_path: Path) -> None:
    tidy, messy = tmp_path / "tidy.net", tmp_path / "messy.net"
    tidy.write_text(DCGAN)
    messy.write_text(DCGAN.replace("batch_size: 64", "batch_size :64"))
    assert main(["fmt", "--check", str(tidy)]) == 0
    assert main(["fmt", "--check", str(messy)]) == 1
    assert main(["fmt", str(messy)]) == 0
    assert messy.read_text() == DCGAN


# --- editor grammar -----------------------------------------------------------------


def _patterns() -> dict[str, re.Pattern[str]]:
    return {p["name"]: re.compile(p["match"]) for p in textmate_grammar()["patterns"]}


def test_the_checked_in_editor_grammar_is_current() -> None:
    path = ROOT / "editors" / "vscode" / "syntaxes" / "dslnet.tmLanguage.json"
    assert path.read_text(encoding="utf-8") == textmate_json()
    json.loads(textmate_json())


def test_editor_grammar_highlights_train_step_settings_and_noise() -> None:
    patterns = _patterns()
    assert patterns["keyword.other.dslnet"].fullmatch("train")
    assert patterns["entity.name.type.block.dslnet"].search("train DCGAN(z: int = 100) {")[0] == (
        "DCGAN"
    )
    step = patterns["meta.step.dslnet"]
    match = step.search("    step discriminator {  # one optimizer step")
    assert match is not None and match.groups() == ("step", "discriminator")
    assert step.search("    step = step + 1") is None  # an ordinary name
    setting = patterns["meta.setting.dslnet"]
    match = setting.search("    optimizer: adam(lr=2e-4)")
    assert match is not None and match[1] == "optimizer"
    assert setting.search("    in x: float32[N]") is None
    assert patterns["storage.modifier.annotation.dslnet"].search("@noise in z: [N]")


@pytest.mark.parametrize("name", ["meta.step.dslnet", "meta.setting.dslnet"])
def test_captured_scopes_name_every_group(name: str) -> None:
    (entry,) = [p for p in textmate_grammar()["patterns"] if p["name"] == name]
    groups = re.compile(entry["match"]).groups
    assert sorted(entry["captures"]) == [str(k) for k in range(1, groups + 1)]
