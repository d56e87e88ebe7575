# Each target sets up .venv by itself when it is missing, so `make demo` and
# `make test` each work alone on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit golden-accept docs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dslnet compile specs/mlp.net -n ResidualMLP --emit ir
	$(BIN)/python examples/demo.py specs/mlp.net ResidualMLP

lint: $(STAMP)
	$(BIN)/ruff check dslnet tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy dslnet

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

docs: $(STAMP)
	$(BIN)/dslnet ops --markdown > docs/ops.md.tmp && mv docs/ops.md.tmp docs/ops.md
	$(BIN)/python -m dslnet.editor > editors/grammar.tmp \
		&& mv editors/grammar.tmp editors/vscode/syntaxes/dslnet.tmLanguage.json

golden-accept: $(STAMP)
	$(BIN)/python -m pytest tests/test_golden.py tests/test_error_corpus.py --accept

bench: $(STAMP)
	$(BIN)/python bench/frontend_scale.py
	$(BIN)/python bench/backends.py
	$(BIN)/python bench/backends.py --spec specs/resnet.net --network ResNet18 --batches 1 16 --number 10
	$(BIN)/python bench/gpt.py
	$(BIN)/python bench/prune.py
	$(BIN)/python bench/quantize.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
