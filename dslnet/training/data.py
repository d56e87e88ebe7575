"""Training data: arrays from a `.npz` file (by input name), or a generated task for
a smoke run; and the batches of an epoch, a function of (seed, epoch) alone so that
a resumed run sees the same ones."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dslnet.core.symbolic import SymExpr
from dslnet.core.types import DType, TensorType
from dslnet.fileio import FileProblem
from dslnet.fileio.arrays import read_npz
from dslnet.frontend.train.noise import Noise
from dslnet.ir.domains import domain_uses, input_domains
from dslnet.ir.graph import Graph
from dslnet.training.errors import TrainError
from dslnet.training.noise import draw

Arrays = dict[str, torch.Tensor]

TORCH_DTYPES = {
    DType.float32: torch.float32,
    DType.float16: torch.float16,
    DType.float64: torch.float64,
    DType.int64: torch.int64,
    DType.int32: torch.int32,
    DType.bool: torch.bool,
}
FREE_SIZE = 8  # a symbolic non-batch dimension in generated data


def load_npz(
    path: Path,
    inputs: Mapping[str, TensorType],
    roots: list[Path] | None = None,
    graphs: Sequence[Graph] = (),
) -> Arrays:
    """The arrays of `path` named like `inputs`, checked and converted (with `graphs`,
    class labels and indices checked against what the ops that read them accept).
    With `roots`, the file must really lie below one of them."""
    try:
        found = read_npz(path, roots)
    except FileProblem as err:
        raise TrainError(f"cannot read data {err.path}: {err.problem}") from None
    missing = [n for n in inputs if n not in found]
    if missing:
        have = ", ".join(sorted(found)) or "no arrays"
        raise TrainError(
            f"{path} has no array named {', '.join(repr(m) for m in missing)} (the train "
            f"declaration's inputs); it has {have}"
        )
    arrays = checked({n: found[n] for n in inputs}, inputs, str(path))
    check_indices(arrays, inputs, graphs, str(path))
    return arrays


def checked(arrays: Mapping[str, Any], inputs: Mapping[str, TensorType], where: str) -> Arrays:
    """`arrays` as tensors of the inputs' dtypes, their shapes checked."""
    out: Arrays = {}
    count: int | None = None
    for name, ttype in inputs.items():
        array = torch.as_tensor(np.asarray(arrays[name]))
        want = TORCH_DTYPES.get(ttype.dtype)
        if want is None:
            raise TrainError(f"input '{name}' has dtype {ttype.dtype}, which cannot be trained on")
        if array.is_floating_point() != want.is_floating_point or (
            want == torch.bool and array.dtype != torch.bool
        ):
            raise TrainError(
                f"array '{name}' in {where} holds {array.dtype}, but the input is {ttype}"
            )
        if array.dim() != len(ttype.shape):
            raise TrainError(
                f"array '{name}' in {where} has shape {list(array.shape)}, but the input is "
                f"{ttype} (rank {len(ttype.shape)})"
            )
        for axis, (have, dim) in enumerate(zip(array.shape, ttype.shape)):
            if isinstance(dim, int) and have != dim and axis > 0:
                raise TrainError(
                    f"array '{name}' in {where} has shape {list(array.shape)}, but the input "
                    f"is {ttype} (axis {axis})"
                )
        if count is not None and array.shape[0] != count:
            raise TrainError(
                f"the arrays in {where} disagree on the number of samples: '{name}' has "
                f"{array.shape[0]}, the ones before {count}"
            )
        count = array.shape[0]
        out[name] = array.to(want)
    if count == 0:
        raise TrainError(f"{where} holds no samples")
    return out


def synthetic(
    inputs: Mapping[str, TensorType], graphs: list[Graph], samples: int, seed: int
) -> Arrays:
    """A learnable generated task shaped like `inputs`: each int input read as labels
    picks a class, and each float input is that class's fixed random pattern plus
    noise; probability targets are 0/1; other ints are uniform below their bound (the
    domains the ops reading them declare: dslnet.ir.domains)."""
    gen = torch.Generator().manual_seed(seed)
    roles = {
        name: (domain.kind, domain.limit or 2)
        for name, domain in input_domains(graphs, inputs).items()
    }
    classes = max((k for role, k in roles.values() if role == "labels"), default=0)
    labels = torch.randint(0, max(classes, 1), (samples,), generator=gen)
    out: Arrays = {}
    for name, ttype in inputs.items():
        shape = [samples] + [d if isinstance(d, int) else FREE_SIZE for d in ttype.shape[1:]]
        dtype = TORCH_DTYPES.get(ttype.dtype, torch.float32)
        role, bound = roles.get(name, ("", 0))
        if role == "labels":
            out[name] = (labels % bound).view(samples, *[1] * (len(shape) - 1)).expand(shape)
            out[name] = out[name].to(dtype).contiguous()
        elif role == "probabilities":
            out[name] = torch.randint(0, 2, shape, generator=gen).to(dtype)
        elif not dtype.is_floating_point:
            out[name] = torch.randint(0, max(bound, 2), shape, generator=gen).to(dtype)
        elif classes:
            patterns = torch.randn(classes, *shape[1:], generator=gen)
            noise = torch.randn(shape, generator=gen)
            out[name] = (patterns[labels] + 0.5 * noise).to(dtype)
        else:
            out[name] = torch.randn(shape, generator=gen).to(dtype)
    return out


def check_indices(
    arrays: Mapping[str, torch.Tensor],
    inputs: Mapping[str, TensorType],
    graphs: Sequence[Graph],
    where: str,
) -> None:
    """Integer inputs read as class labels or embedding rows must lie in the range the
    reading op accepts (below the class count or table size; the op's ignore_index
    aside): TrainError naming the array, the values found and the range."""
    for use in domain_uses(graphs, inputs):
        tensor = arrays.get(use.value)
        if tensor is None or tensor.is_floating_point() or tensor.dtype == torch.bool:
            continue
        if use.kind == "probabilities":
            continue
        ignore, limit = use.skipped, use.limit
        used = tensor[tensor != ignore] if ignore is not None else tensor
        if used.numel() == 0:
            continue
        low, high = int(used.min()), int(used.max())
        if low < 0 or (limit is not None and high >= limit):
            accepted = f"0 to {limit - 1}" if limit is not None else "0 or more"
            skip = f" (or the ignore_index {ignore})" if ignore is not None else ""
            raise TrainError(
                f"array '{use.value}' in {where} holds {use.domain.what} from {low} to "
                f"{high}; {use.node.op} accepts {accepted}{skip}"
            )


def sample_count(arrays: Arrays) -> int:
    return next(iter(arrays.values())).shape[0] if arrays else 0


def epoch_batches(
    samples: int,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    shuffle: bool = True,
) -> list[torch.Tensor]:
    """The sample indices of each batch of `epoch`: a shuffle drawn from (seed, epoch),
    or the samples in order; the last batch may be smaller (data parallelism shares it
    out like the others: dslnet.training.distributed.share)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(samples, generator=gen) if shuffle else torch.arange(samples)
    return [order[i : i + batch_size] for i in range(0, samples, batch_size)]


def noise(
    names: Mapping[str, Noise], types: Mapping[str, TensorType], batch: int, gen: torch.Generator
) -> Iterator[tuple[str, torch.Tensor]]:
    """A fresh draw of each noise input for a batch of `batch` samples."""
    for name, how in names.items():
        ttype = types[name]
        shape = [batch] + [_size(d) for d in ttype.shape[1:]]
        yield name, draw(how, shape, getattr(torch, ttype.dtype.value), gen)


def _size(dim: int | SymExpr) -> int:
    if isinstance(dim, int):
        return dim
    raise TrainError(f"a noise input needs fixed sizes beyond the batch axis, got {dim}")


class Source:
    """Where the batches of an epoch come from: each batch is a dict of the global
    batch's tensors, by input name. Samples are drawn by index, in an order that is a
    function of (seed, epoch) alone."""

    samples: int = 0

    def batches(
        self,
        batch_size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        shuffle: bool = True,
    ) -> Iterable[dict[str, torch.Tensor]]:
        """The batches of `epoch` from the `start`-th on (in sample order when not
        `shuffle`: validation)."""
        every = epoch_batches(self.samples, batch_size, seed, epoch, shuffle=shuffle)
        return (self.take(picks) for picks in every[start:])

    def take(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The samples at `indices`, as one batch."""
        raise NotImplementedError

    def batch_count(self, batch_size: int) -> int:
        return -(-self.samples // batch_size)


class ArraySource(Source):
    def __init__(self, arrays: Arrays) -> None:
        self.arrays = arrays
        self.samples = sample_count(arrays)

    def take(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: t[indices] for name, t in self.arrays.items()}


class DatasetSource(Source):
    """A map-style torch Dataset whose items are dicts by input name, or tuples in the
    order of the inputs; shuffled by the trainer's seed, so resume stays exact."""

    def __init__(self, dataset: Any, inputs: Mapping[str, TensorType]) -> None:
        self.dataset = dataset
        self.inputs = inputs
        self.samples = len(dataset)
        if self.samples == 0:
            raise TrainError("the dataset holds no samples")

    def take(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        from torch.utils.data import default_collate

        batch = default_collate([self.dataset[int(i)] for i in indices])
        return named_batch(batch, self.inputs, "a dataset batch")


class LoaderSource(Source):
    """A DataLoader's own batches, in its own order (its sampler decides how a resumed
    run continues, and its batch size wins over `batch_size:`)."""

    def __init__(self, loader: Any, inputs: Mapping[str, TensorType]) -> None:
        self.loader = loader
        self.inputs = inputs
        self.samples = len(loader.dataset) if hasattr(loader, "dataset") else 0

    def batches(
        self,
        batch_size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        shuffle: bool = True,
    ) -> Iterator[dict[str, torch.Tensor]]:
        for batch in itertools.islice(self.loader, start, None):
            yield named_batch(batch, self.inputs, "a DataLoader batch")

    def batch_count(self, batch_size: int) -> int:
        return len(self.loader)


def named_batch(batch: Any, inputs: Mapping[str, TensorType], where: str) -> Arrays:
    """A collated batch (a dict by input name, a tuple in input order, or one tensor
    for a single input), checked against the inputs."""
    names = list(inputs)
    if isinstance(batch, Mapping):
        missing = [n for n in names if n not in batch]
        if missing:
            raise TrainError(f"{where} has no {', '.join(repr(m) for m in missing)}")
        found = {n: batch[n] for n in names}
    elif isinstance(batch, (tuple, list)):
        if len(batch) != len(names):
            raise TrainError(
                f"{where} holds {len(batch)} tensors; the inputs are {', '.join(names)}"
            )
        found = dict(zip(names, batch))
    elif len(names) == 1:
        found = {names[0]: batch}
    else:
        raise TrainError(f"{where} is one tensor; the inputs are {', '.join(names)}")
    return checked(found, inputs, where)


def source_of(data: Any, inputs: Mapping[str, TensorType], what: str = "training") -> Source:
    """Arrays by name, a map-style Dataset or a DataLoader, as a Source."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(data, DataLoader):
        return LoaderSource(data, inputs)
    if isinstance(data, Dataset) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, Mapping)
    ):
        return DatasetSource(data, inputs)
    if isinstance(data, Mapping):
        return ArraySource(checked(data, inputs, f"the {what} data"))
    raise TrainError(
        f"{what} data must be arrays by input name, a Dataset or a DataLoader; got "
        f"{type(data).__name__}"
    )
