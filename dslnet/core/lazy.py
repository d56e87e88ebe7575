"""Modules imported at their first use, so that the front end (`dslnet check`) does not
load numpy: the ops define their initialisers and ONNX lowerings with it, and a check
runs neither.

`from dslnet.core.lazy import numpy as np` reads like `import numpy as np`, and type
checkers see numpy itself; at run time `np` is a stand-in that imports numpy when the
first attribute is asked of it (`np.float32`), then keeps each attribute it handed out.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any


class LazyModule(ModuleType):
    """Stands for the module `name`, imported when an attribute is first asked."""

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self.__name__), attribute)
        setattr(self, attribute, value)  # asked again: found without this call
        return value

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))


if TYPE_CHECKING:
    import numpy as numpy
else:
    numpy = LazyModule("numpy")
