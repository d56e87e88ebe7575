"""The index of built-in ops (dslnet/ops/op_index_table.py): current, and a lookup that
goes through it imports only the op families a spec calls, with the same answers as
the registry gives with every family imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from dslnet.ops import op_index, op_index_table, registry

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    """Run `code` in a fresh interpreter (nothing imported yet); its stdout."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_the_checked_in_index_is_current() -> None:
    assert op_index.TABLE_FILE.read_text("utf-8") == op_index.table_text(), (
        "dslnet/ops/op_index_table.py is stale (an op was added, renamed or moved): "
        "run `make op-index`"
    )


def test_the_index_names_every_op_and_operator_the_registry_has() -> None:
    from dslnet.ops import op_index_table

    builtins = registry.builtin_ops()
    assert sorted(op_index_table.MODULES) == sorted(builtins)
    assert {symbol: op.name for symbol, op in registry.operators().items()} == (
        op_index_table.OPERATOR_OPS
    )
    assert registry.names() == list(registry.all_ops())


def test_checking_a_spec_imports_only_the_families_it_calls() -> None:
    out = _run(
        """
        import sys
        from dslnet.cli import main
        main(["check", "specs/mlp.net"])
        print(sorted(m for m in sys.modules if m.startswith("dslnet.ops.")))
        """
    )
    loaded = out.splitlines()[-1]
    assert "dslnet.ops.linear" in loaded and "dslnet.ops.activation" in loaded, loaded
    for unused in ("conv", "recurrent", "attention", "pool", "loss"):
        assert f"dslnet.ops.{unused}'" not in loaded, loaded


def test_lazy_lookups_answer_as_the_full_registry() -> None:
    out = _run(
        """
        from dslnet.ops import registry
        op = registry.get("relu")
        print(type(op).__module__)
        print(registry.origin("conv2d"))
        print(registry.get("no_such_op"), registry.get("relu") is op)
        print(registry.names() == list(registry.all_ops()))
        """
    )
    assert out.splitlines() == [
        "dslnet.ops.activation",
        "dslnet (built-in, dslnet.ops.conv.Conv2d)",
        "None True",
        "True",
    ]


def test_a_restored_snapshot_keeps_the_families_imported_after_it() -> None:
    """A family imported after a snapshot registers once only: the snapshot has them all."""
    out = _run(
        """
        from dslnet.ops import registry
        registry.get("relu")
        saved = registry.snapshot()
        registry.get("conv2d")
        registry.restore(saved)
        print(registry.get("conv2d") is not None)
        """
    )
    assert out.split() == ["True"]


def test_the_operators_are_found_without_importing_every_family() -> None:
    out = _run(
        """
        import json
        import sys
        from dslnet.ops import registry
        print(json.dumps({symbol: op.name for symbol, op in registry.operators().items()}))
        print("dslnet.ops.conv" in sys.modules)
        """
    )
    operators, conv_loaded = out.splitlines()
    found = json.loads(operators)
    assert found == op_index_table.OPERATOR_OPS
    assert {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}.items() <= found.items()
    assert conv_loaded == "False"


def test_a_plugin_loading_first_does_not_take_the_builtins_it_imports() -> None:
    """A plugin's registration imports every built-in family: they stay dslnet's."""
    out = _run(
        """
        from dslnet.ops import NoAttrs, OpDef, registry

        class Twice(OpDef):
            name = "twice_for_index_test"
            family = "user"
            Attrs = NoAttrs

        with registry.attributed_to("twice", "twicepkg 1.0"):
            try:
                registry.register(Twice)
            except registry.OpDefinitionError:
                pass  # an incomplete op: what matters is what its registration imported
        relu = registry.origin("relu")
        print(relu is not None and relu.entry_point, relu and relu.source)
        """
    )
    assert out.split() == ["None", "dslnet.ops.activation"]


def test_threads_looking_up_and_listing_at_once_all_find_every_op() -> None:
    out = _run(
        """
        import threading
        from dslnet.ops import op_index_table, registry

        names = sorted(op_index_table.MODULES)
        missing, sizes = [], []
        start = threading.Barrier(8)

        def look_up(part):
            start.wait()
            for name in names[part::6]:
                registry.operators()  # lists the registry while others import into it
                if registry.get(name) is None:
                    missing.append(name)

        def list_all():
            start.wait()
            sizes.append(len(registry.all_ops()))

        threads = [threading.Thread(target=look_up, args=(i,)) for i in range(6)]
        threads += [threading.Thread(target=list_all) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(missing, sizes == [len(names)] * 2)
        """
    )
    assert out.split() == ["[]", "True"]
