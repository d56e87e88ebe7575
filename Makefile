# Each target sets up .venv by itself when it is missing, so `make demo` and
# `make test` each work alone on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit golden-accept docs parse-table op-index bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	@$(ENSURE_GRAPHVIZ)
	touch $(STAMP)

# Graphviz's `dot` renders `dslnet graph -o x.svg|x.png`. Installed with apt-get (as
# root, or through sudo when it needs no password); when it cannot be, a note, never
# a failure: .dot output works without it and the rendering tests skip.
define ENSURE_GRAPHVIZ
command -v dot >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ]; then as=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as="sudo -n"; \
	else as=none; fi; \
	if [ "$$as" != none ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Graphviz (dot) with apt-get, for dslnet graph"; \
		$$as apt-get update -qq >/dev/null 2>&1; \
		$$as env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null 2>&1; \
	fi; \
	command -v dot >/dev/null 2>&1 || echo "note: Graphviz's dot is missing and could not be installed here (needs apt-get as root or with sudo): dslnet graph writes .dot only; install it with apt-get install graphviz or brew install graphviz"; \
}
endef

demo: $(STAMP)
	$(BIN)/dslnet compile specs/mlp.net -n ResidualMLP --emit ir
	$(BIN)/python examples/demo.py specs/mlp.net ResidualMLP
	$(BIN)/dslnet train specs/mnist.net --synthetic 2048 --out build/demo/mnist --force

lint: $(STAMP)
	$(BIN)/ruff check dslnet tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy dslnet

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

docs: $(STAMP)
	$(BIN)/python -m dslnet.ops.op_index
	$(BIN)/dslnet ops --markdown > docs/ops.md.tmp && mv docs/ops.md.tmp docs/ops.md
	$(BIN)/python -m dslnet.editor > editors/grammar.tmp \
		&& mv editors/grammar.tmp editors/vscode/syntaxes/dslnet.tmLanguage.json

# The LALR tables the parser loads (grammar/lalr_table.json): after editing the grammar.
parse-table: $(STAMP)
	$(BIN)/python -m dslnet.frontend.parse_table

# Which module defines each built-in op (dslnet/ops/op_index_table.py): after adding,
# renaming or moving an op.
op-index: $(STAMP)
	$(BIN)/python -m dslnet.ops.op_index

golden-accept: $(STAMP)
	$(BIN)/python -m pytest tests/test_golden.py tests/test_error_corpus.py --accept

bench: $(STAMP)
	$(BIN)/python bench/frontend_scale.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/backends.py
	$(BIN)/python bench/backends.py --spec specs/resnet.net --network ResNet18 --batches 1 16 --number 10
	$(BIN)/python bench/gpt.py
	$(BIN)/python bench/prune.py
	$(BIN)/python bench/quantize.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
