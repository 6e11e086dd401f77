"""Datasets and a DataLoader that batches them, shuffling with chainrule's generator."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from chainrule import _core
from chainrule.tensor import Tensor, _wrap


class Dataset:
    """Anything with __getitem__(i) and __len__()."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dim.

    >>> import chainrule as cr
    >>> ds = cr.utils.data.TensorDataset(cr.zeros(5, 2), cr.arange(5))
    >>> len(ds), ds[1][1].item()
    (5, 1)
    """

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor) or t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} must be a tensor with at least 1 dim")
            if t.shape[0] != tensors[0].shape[0]:
                raise ValueError(f"TensorDataset: tensor {i} has {t.shape[0]} rows but tensor 0 has "
                                 f"{tensors[0].shape[0]}")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


def default_collate(samples: Sequence[Any]) -> Any:
    """Stacks a list of samples: tensors into a batch tensor, tuples element by element."""
    from chainrule.creation import tensor
    from chainrule.tensor import stack

    first = samples[0]
    if isinstance(first, Tensor):
        return stack(list(samples))
    if isinstance(first, (int, float, bool)):
        return tensor(list(samples))
    if isinstance(first, (tuple, list)):
        return type(first)(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}")


class DataLoader:
    """Iterates a dataset in batches; `shuffle` draws a new order from chainrule's generator
    (seeded by cr.manual_seed) every epoch.

    >>> import chainrule as cr
    >>> loader = cr.utils.data.DataLoader(cr.utils.data.TensorDataset(cr.arange(5)), batch_size=2)
    >>> [b[0].tolist() for b in loader]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, collate_fn: Any = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.collate_fn = collate_fn or default_collate

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        order = _core.randperm(n) if self.shuffle else _core.arange(0, n, 1, _core.DType.int64)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.drop_last and stop - start < self.batch_size:
                break
            rows = order.slice(0, start, stop, 1)
            if isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate:
                # One gather per tensor instead of one __getitem__ per sample.
                yield tuple(t[_wrap(rows)] for t in self.dataset.tensors)
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in rows.numpy()])
