"""The torch form of the init schemes (`dslnet.ir.init`): lines of generated code run
by a module's constructor. The schemes, which parameters they set and their numpy
form live in the IR; only the calls into `torch.nn.init` are here.
"""

from __future__ import annotations

from collections.abc import Mapping

from dslnet.ir import init as init_schemes
from dslnet.ops.opdef import OpDef

# scheme -> the torch call on a weight ("default" sets nothing: PyTorch's own stays)
WEIGHT_CALLS: dict[str, str] = {
    "kaiming": 'nn.init.kaiming_normal_({w}, nonlinearity="relu")',
    "kaiming_uniform": 'nn.init.kaiming_uniform_({w}, nonlinearity="relu")',
    "xavier": "nn.init.xavier_uniform_({w})",
    "xavier_normal": "nn.init.xavier_normal_({w})",
    "normal": "nn.init.normal_({w}, 0.0, 0.02)",
    "zeros": "nn.init.zeros_({w})",
}


def torch_lines(
    scheme: str, attr: str, params: Mapping[str, tuple[int, ...]], op: OpDef
) -> list[str]:
    """Constructor lines applying `scheme` to `self.<attr>`'s parameters (role -> shape)
    of a call of `op`, which says which of them are weights."""
    if not op.takes_init():
        return []
    lines = []
    for role, shape in params.items():
        target = f"self.{attr}.{role}"
        weight = op.is_weight(role)
        if not init_schemes.draws(scheme, weight, shape):
            continue
        if weight:
            lines.append(WEIGHT_CALLS[scheme].format(w=target))
        else:
            lines.append(f"nn.init.zeros_({target})")
    return lines
