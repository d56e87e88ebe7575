"""Shared pytest options and fixtures.

`--accept` rewrites golden files instead of comparing. A test that takes `spec_network`
runs once per network of specs/, one that takes `spec_file` once per file of specs/:
the one sweep over the library, with one size policy (`SpecNetwork.graph(small=True)`)
for the tests that compute with the networks rather than print them.

The scripts of examples/ (tests/test_examples.py) take minutes of one core each and
wait on nothing: a test that takes `example_script` runs once per script, and the
scripts start in the background as the session starts, one at a time, while the rest
of the suite uses the other core; their tests run last (`example_runs`).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dslnet
from dslnet.ir.graph import Graph
from dslnet.ops import NO_PLUGINS_ENV

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILES = sorted((ROOT / "specs").glob("*.net"))

# The size policy: arguments that make each big network of specs/ run in well under a
# second, with the same ops, blocks and wiring (the full sizes are pinned by the golden
# files and by the parameter counts of tests/test_library.py).
SMALL: dict[str, dict[str, Any]] = {
    "DCGANGenerator": {"ngf": 8},
    "DCGANDiscriminator": {"ndf": 8},
    "Pix2PixGenerator": {"ngf": 4},
    "PatchGANDiscriminator": {"ndf": 8, "size": 64},
    "GCN": {"features": 64},
    "GAT": {"features": 64},
    "NCF": {"users": 50, "items": 40},
    "ResNet18": {"classes": 10, "size": 32},
    "ResNet34": {"classes": 10, "size": 32},
    "ResNet50": {"classes": 10, "size": 32},
    "VGG11": {"classes": 10, "size": 32},
    "VGG11BN": {"classes": 10, "size": 32},
    "MLP": {"hidden": 96},
    "ResidualMLP": {"hidden": 64},
    "LSTMSeq2Seq": {"src_vocab": 50, "tgt_vocab": 50, "emb": 32, "hidden": 32},
    "GRUClassifier": {"vocab": 50, "emb": 16, "hidden": 32},
    "BiLSTMTagger": {"vocab": 50, "emb": 16, "hidden": 32},
    "Siamese": {"size": 32},
    "Triplet": {"size": 32},
    "SimCLR": {"features": 64, "hidden": 64, "size": 16},
    "Transformer": {"d": 32, "heads": 4, "encoder_layers": 1, "decoder_layers": 1, "ffn": 64},
    "GPT": {"vocab": 50, "d": 32, "layers": 1, "context": 16},
    "BERT": {"vocab": 50, "d": 32, "layers": 1, "ffn": 64, "context": 16},
    "UNet": {"base": 4},
    "ViT": {"dim": 48, "depth": 2, "mlp": 96},
}
# VGG's and ResNet's widths are no arguments: their small versions read the spec with
# every width (64 ... 512, VGG's 4096) divided by 8.
_NARROWED = {"vgg", "resnet"}
_WIDTH = re.compile(r"\b(64|128|256|512|4096)\b")


@functools.cache
def _program(path: Path, small: bool) -> dslnet.Program:
    if small and path.stem in _NARROWED:
        text = _WIDTH.sub(lambda m: str(int(m.group()) // 8), path.read_text())
        return dslnet.loads(text, filename=str(path))
    return dslnet.load(path)


@dataclass(frozen=True)
class SpecNetwork:
    """One network of specs/: at the spec's own sizes, or at the size policy's."""

    path: Path
    name: str

    def __str__(self) -> str:
        return f"{self.path.stem}-{self.name}"

    def program(self, small: bool = False) -> dslnet.Program:
        """The spec's program (shared: read once per session); `small`: narrowed."""
        return _program(self.path, small)

    def params(self, small: bool = False) -> dict[str, Any]:
        """The arguments that give the network its size."""
        return dict(SMALL.get(self.name, {})) if small else {}

    def graph(self, small: bool = False) -> Graph:
        """A fresh IR graph of the network (tests may change it)."""
        return self.program(small).ir(self.name, **self.params(small))


@functools.cache
def spec_networks() -> list[SpecNetwork]:
    return [
        SpecNetwork(path, name) for path in SPEC_FILES for name in _program(path, False).networks
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # At collection, not at import: pytest_configure has switched plugins off by then.
    if "example_script" in metafunc.fixturenames:
        metafunc.parametrize("example_script", sorted(EXAMPLES))
    if "spec_network" in metafunc.fixturenames:
        metafunc.parametrize("spec_network", spec_networks(), ids=str)
    if "spec_file" in metafunc.fixturenames:
        metafunc.parametrize("spec_file", SPEC_FILES, ids=lambda path: path.stem)


@pytest.fixture(scope="session")
def spec_files() -> list[Path]:
    """Every file of specs/, sorted."""
    return SPEC_FILES


# --- examples/, run in the background ----------------------------------------------------

EXAMPLES_TEST = ROOT / "tests" / "test_examples.py"
_TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# Each script with its launcher and a line it prints when it succeeds; longest first.
EXAMPLES: dict[str, tuple[list[str], str]] = {
    "dcgan": ([sys.executable], "steps in"),
    "siamese": ([sys.executable], "epoch 4: contrastive loss"),
    "ddp": (_TORCHRUN, "over 2 processes"),
    "serve_onnx": ([sys.executable], "agree on 100.0%"),
    "transfer_learning": ([sys.executable], "task 2, epoch 3"),
    "train_mnist": ([sys.executable], "epoch 3: loss"),
    "embed": ([sys.executable], "networks:"),
}
EXAMPLE_TIMEOUT_S = 300
ExampleRun = Future[subprocess.CompletedProcess[str]]


class _Examples:
    """The selected examples, run one after another on a thread of their own."""

    def __init__(self, names: list[str]) -> None:
        self.runs: dict[str, ExampleRun] = {name: Future() for name in names}
        self.current: subprocess.Popen[str] | None = None
        self.stopped = False
        # The environment the tests see (tests/conftest.py's _plain_output).
        skip = {"NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "DSLNET_PROGRESS"}
        self.env = {k: v for k, v in os.environ.items() if k not in skip}
        threading.Thread(target=self._run_all, daemon=True).start()

    def _run_all(self) -> None:
        for name, run in self.runs.items():
            if self.stopped:
                run.cancel()
                continue
            launcher, _ = EXAMPLES[name]
            command = [*launcher, str(ROOT / "examples" / f"{name}.py")]
            try:
                with subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ) as self.current:
                    out, err = self.current.communicate(timeout=EXAMPLE_TIMEOUT_S)
                    code = self.current.returncode
                run.set_result(subprocess.CompletedProcess(command, code, out, err))
            except BaseException as error:  # a timeout, say: the test reports it
                run.set_exception(error)

    def stop(self) -> None:
        self.stopped = True
        if self.current is not None and self.current.poll() is None:
            self.current.kill()


_examples: _Examples | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The examples' tests go last: by then their scripts have (mostly) run."""
    examples = [item for item in items if item.path == EXAMPLES_TEST]
    items[:] = [item for item in items if item.path != EXAMPLES_TEST] + examples


def pytest_collection_finish(session: pytest.Session) -> None:
    global _examples
    selected = {
        item.callspec.params.get("example_script")
        for item in session.items
        if item.path == EXAMPLES_TEST and hasattr(item, "callspec")
    }
    if selected and not session.config.option.collectonly:
        _examples = _Examples([name for name in EXAMPLES if name in selected])


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _examples is not None:
        _examples.stop()


@pytest.fixture(scope="session")
def examples() -> dict[str, tuple[list[str], str]]:
    """Each script of examples/ that is run: its launcher and a line it prints when it
    succeeds."""
    return EXAMPLES


@pytest.fixture(scope="session")
def example_runs() -> dict[str, ExampleRun]:
    """Name -> the run of each selected example (`.result()` waits for it)."""
    assert _examples is not None, "no example test was collected"
    return _examples.runs


def pytest_configure(config: pytest.Config) -> None:
    """dslnet's tests see only its own ops: an op package installed in the environment
    running them would change what `dslnet ops` lists, and a broken one would fail every
    test. tests/test_user_ops.py turns plugins back on where it tests them."""
    os.environ[NO_PLUGINS_ENV] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--accept", action="store_true", help="rewrite golden/expected files with current output"
    )


@pytest.fixture
def accept(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--accept"))


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Expected outputs are the plain, piped text: colour and progress settings of the
    environment running the tests (FORCE_COLOR in CI, say) must not leak into them."""
    for name in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "DSLNET_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
