"""Executing generated torch source, and pickling what it defines.

A generated module's classes live in a namespace made by `exec`, not in an importable
module, so pickle cannot find them by name. Each class made here therefore pickles its
instances as "the class `qualname` of this source" plus the instance's state: the
source travels in the pickle (once; pickle memoizes the shared string), and loading
executes it again, or reuses a live namespace of the same source in this process.
This is what makes `pickle` and `torch.save(module)` / `torch.load(..., weights_only=False)`
round-trip, also in a fresh process where only dslnet is importable.

Unpickling runs code by design (it is pickle); the safe form for untrusted files is a
state dict (`.safetensors`, or `.pt` read with `weights_only=True`), which is what
`dslnet.fileio` reads.
"""

from __future__ import annotations

import hashlib
import linecache
import weakref
from typing import Any

_counter = 0


class _LinecacheEntry:
    """Lives in a generated module's namespace, which every class and function made
    from the source holds (as their globals): when the last of them is gone, so is the
    source's linecache entry. Modules built again and again keep no source behind."""

    def __init__(self, filename: str) -> None:
        weakref.finalize(self, linecache.cache.pop, filename, None)


class _Generated:
    """What unpickling needs to find a generated class again: its source and names."""

    def __init__(self, source: str, module_name: str, label: str, namespace: dict[str, Any]):
        self.source, self.module_name, self.label = source, module_name, label
        self.namespace = namespace


# Source digest -> a live namespace executed from that source (kept while its classes live).
_live: weakref.WeakValueDictionary[str, _Generated] = weakref.WeakValueDictionary()


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def execute_source(source: str, module_name: str, label: str) -> dict[str, Any]:
    """The namespace of `source` executed as module `module_name`; `label` names it in
    tracebacks (`<dslnet:label:N>`). Its classes pickle by source (see the docstring)."""
    global _counter
    _counter += 1
    filename = f"<dslnet:{label}:{_counter}>"
    # Registered so tracebacks, inspect and torch.compile can show the real lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {
        "__name__": module_name,
        "__dslnet_source__": _LinecacheEntry(filename),
    }
    exec(compile(source, filename, "exec"), namespace)
    # Held by the namespace, so it lives exactly as long as the classes do.
    generated = namespace["__dslnet_origin__"] = _Generated(source, module_name, label, namespace)
    _live[_digest(source)] = generated
    for value in list(namespace.values()):
        if isinstance(value, type) and value.__module__ == module_name:
            # On the class itself (a cycle the collector frees with the rest).
            value.__dslnet_origin__ = generated  # type: ignore[attr-defined]
            value.__reduce_ex__ = _reduce_generated  # type: ignore[assignment]
    return namespace


def _reduce_generated(self: Any, protocol: int) -> str | tuple[Any, ...]:
    """Pickle an instance of a generated class by its source, class name and state."""
    cls = type(self)
    origin = vars(cls).get("__dslnet_origin__")
    if origin is None:  # a user's subclass, defined in an importable module
        return object.__reduce_ex__(self, protocol)
    args = (origin.source, origin.module_name, origin.label, cls.__qualname__)
    return (_rebuild, args, self.__getstate__())


def _rebuild(source: str, module_name: str, label: str, qualname: str) -> Any:
    """A bare instance of class `qualname` of `source` (pickle then sets its state)."""
    live = _live.get(_digest(source))
    namespace = live.namespace if live else execute_source(source, module_name, label)
    cls: Any = namespace[qualname.split(".")[0]]
    for part in qualname.split(".")[1:]:
        cls = getattr(cls, part)
    return cls.__new__(cls)
