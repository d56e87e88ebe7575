"""Editor support: the TextMate grammar for `.net` files (VS Code and others).

Keywords come from the language, op names from the registry, so the grammar is
generated (`make docs` writes editors/vscode/syntaxes/dslnet.tmLanguage.json) and a
test checks the checked-in copy is current.
"""

from __future__ import annotations

import json
from typing import Any

from dslnet.frontend.annotations import USAGE
from dslnet.frontend.vocabulary import BUILTINS
from dslnet.ops import registry

KEYWORDS = ("block", "network", "train", "in", "out", "layer", "const", "import")
CONTROL = ("for", "repeat", "as", "if", "elif", "else")
OPERATORS = ("and", "or", "not")
DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "uint8", "int16", "int32",
          "int64", "bool")  # fmt: skip
# Annotations the training compiler reads (the others are the reduction passes' USAGE).
TRAIN_ANNOTATIONS = ("noise",)
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _words(words: Any) -> str:
    return r"\b(" + "|".join(sorted(words)) + r")\b"


def textmate_grammar() -> dict[str, Any]:
    ops = set(registry.builtin_ops())  # the checked-in grammar must not depend on plugins
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "dslnet",
        "scopeName": "source.dslnet",
        "fileTypes": ["net"],
        "patterns": [
            {"name": "comment.line.number-sign.dslnet", "match": "#.*$"},
            {"name": "string.quoted.double.dslnet", "match": r'"([^"\\]|\\.)*"'},
            {
                "name": "storage.modifier.annotation.dslnet",
                "match": r"@" + _words({*USAGE, *TRAIN_ANNOTATIONS}),
            },
            # `step NAME {` opens a step of a train; elsewhere `step` is an ordinary name.
            {
                "name": "meta.step.dslnet",
                "match": rf"\b(step)\s+({_NAME})(?=\s*\{{)",
                "captures": {
                    "1": {"name": "keyword.other.step.dslnet"},
                    "2": {"name": "entity.name.function.step.dslnet"},
                },
            },
            # `optimizer: adam(lr=1e-3)`: a setting of a train or step, alone on its line.
            {
                "name": "meta.setting.dslnet",
                "match": rf"^\s*({_NAME})\s*(?=:)",
                "captures": {"1": {"name": "support.type.property-name.setting.dslnet"}},
            },
            {"name": "keyword.other.dslnet", "match": _words(KEYWORDS)},
            {"name": "keyword.control.dslnet", "match": _words(CONTROL)},
            {"name": "keyword.operator.word.dslnet", "match": _words(OPERATORS)},
            {"name": "constant.language.dslnet", "match": _words(("true", "false"))},
            {"name": "storage.type.dslnet", "match": _words(DTYPES)},
            {"name": "support.function.op.dslnet", "match": _words(ops)},
            {"name": "support.function.builtin.dslnet", "match": _words(BUILTINS)},
            {
                "name": "entity.name.type.block.dslnet",
                "match": r"(?:(?<=\bblock )|(?<=\bnetwork )|(?<=\btrain ))" + _NAME,
            },
            {"name": "keyword.operator.arrow.dslnet", "match": "->"},
            {
                "name": "constant.numeric.dslnet",
                "match": r"\b[0-9][0-9_]*(\.[0-9]+)?([eE][-+]?[0-9]+)?\b",
            },
        ],
    }


def textmate_json() -> str:
    return json.dumps(textmate_grammar(), indent=2) + "\n"


if __name__ == "__main__":
    print(textmate_json(), end="")
