"""Which spec names can be module attributes of the generated PyTorch code.

A parameter's IR name (`enc.fc.weight`) is also its key in the generated module's
state_dict, so every segment of a module path must be usable as `self.<segment>`:
not a Python keyword, not private or name-mangled (a leading `_`), and not one of
the names `torch.nn.Module` itself defines (a layer named `forward` or `training`
would break the module). The frontend maps layer names that are not (see
`Frame.layer_segment`); the backend then uses the segments as they are.
"""

from __future__ import annotations

import keyword

# Every public name of torch.nn.Module, its methods and its instance attributes
# (tests/test_safety.py checks the list against the installed torch).
MODULE_ATTRIBUTES = frozenset(
    {
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
    }
)


def is_attribute_name(name: str) -> bool:
    """Whether `self.<name>` can hold a submodule of a generated nn.Module."""
    return (
        name.isidentifier()
        and name.isascii()
        and not keyword.iskeyword(name)
        and not name.startswith("_")
        and name not in MODULE_ATTRIBUTES
    )


def attribute_variant(name: str, taken: set[str] | frozenset[str]) -> str:
    """A name that `is_attribute_name` accepts, made from `name` and not in `taken`:
    `class` -> `class_`, `_x` -> `x_`, `forward` -> `forward_` (more `_` while taken)."""
    core = name.strip("_")
    if not core[:1].isalpha():  # `_` or `_1x`: a name cannot start with what is left
        core = "layer_" + core if core else "layer"
    candidate = core + "_"
    while candidate in taken or not is_attribute_name(candidate):
        candidate += "_"
    return candidate
