"""Datasets, samplers and a DataLoader that batches them (in worker processes if asked),
shuffling with chainrule's generators."""
from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import Any, Iterator, Sequence

import numpy as np

from chainrule import _core
from chainrule.creation import randperm
from chainrule.random import Generator
from chainrule.tensor import Tensor, _wrap
from chainrule.utils._workers import WorkerInfo, get_worker_info

__all__ = ["BatchSampler", "DataLoader", "Dataset", "DistributedSampler", "RandomSampler",
           "Sampler", "SequentialSampler", "Subset", "TensorDataset", "WorkerInfo", "default_collate",
           "get_worker_info", "random_split"]


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


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, list):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def _split_lengths(total: int, lengths: Sequence[float]) -> list[int]:
    """Fractions summing to 1 become counts as PyTorch makes them: floor(total * fraction)
    each, then the remainder handed out one by one from the first split on."""
    if not (math.isclose(sum(lengths), 1) and sum(lengths) <= 1):
        return [int(n) for n in lengths]
    counts = []
    for i, fraction in enumerate(lengths):
        if not 0 <= fraction <= 1:
            raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1: {fraction}")
        counts.append(int(math.floor(total * fraction)))
    for i in range(total - sum(counts)):
        counts[i % len(counts)] += 1
    for i, count in enumerate(counts):
        if count == 0:
            warnings.warn(f"random_split: length of split at index {i} is 0; this split will be empty",
                          stacklevel=3)
    return counts


def random_split(dataset: Any, lengths: Sequence[float], generator: Generator | None = None) -> list[Subset]:
    """Splits `dataset` into non-overlapping random subsets of the given lengths (counts, or
    fractions that sum to 1), drawing one permutation from `generator` (chainrule's default
    generator when None): the same seed, the same split.

    >>> import chainrule as cr
    >>> train, test = cr.utils.data.random_split(range(10), [0.8, 0.2],
    ...                                          generator=cr.Generator().manual_seed(0))
    >>> len(train), len(test), sorted(list(train) + list(test)) == list(range(10))
    (8, 2, True)
    """
    counts = _split_lengths(len(dataset), lengths)
    if any(n < 0 for n in counts):
        raise ValueError(f"random_split: lengths must not be negative, got {list(lengths)}")
    if sum(counts) != len(dataset):
        raise ValueError(f"random_split: the lengths {list(lengths)} sum to {sum(counts)}, but the "
                         f"dataset has {len(dataset)} samples")
    order = randperm(sum(counts), generator=generator).tolist()
    ends = itertools.accumulate(counts)
    return [Subset(dataset, order[end - n:end]) for end, n in zip(ends, counts)]


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


class Sampler:
    """Yields dataset indices; a DataLoader batches what its sampler yields."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of the indices, drawn anew for each pass, as PyTorch's RandomSampler.

    Without a `generator`, each pass draws a seed from chainrule's default generator (so
    `cr.manual_seed` decides the orders) and permutes with a generator of its own; with one,
    it permutes with that. `replacement=True` draws `num_samples` indices independently.

    >>> import chainrule as cr
    >>> sampler = cr.utils.data.RandomSampler(range(5), generator=cr.Generator().manual_seed(0))
    >>> sorted(sampler)
    [0, 1, 2, 3, 4]
    """

    def __init__(self, data_source: Any, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, got "
                            f"{replacement!r}")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, "
                             f"but got num_samples={num_samples!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if self.num_samples <= 0:
            raise ValueError(f"RandomSampler: num_samples should be a positive integer value, "
                             f"but got num_samples={self.num_samples} (an empty dataset?)")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        from chainrule.creation import randint, randperm

        n = len(self.data_source)
        generator = self.generator
        if generator is None:
            seed = int(randint(0, 2**63 - 1, ()).item())
            generator = Generator().manual_seed(seed)
        if self.replacement:
            for start in range(0, self.num_samples, 32):
                count = min(32, self.num_samples - start)
                yield from randint(0, n, (count,), generator=generator).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from randperm(n, generator=generator).tolist()
        yield from randperm(n, generator=generator).tolist()[:self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class DistributedSampler(Sampler):
    """The indices of one process's share of a dataset, for data-parallel training, as
    PyTorch's DistributedSampler: process `rank` of `num_replicas` takes every num_replicas-th
    index of one order all processes agree on, so the shares are disjoint and cover the dataset
    (padded by repeating the order's start so every process gets as many, or cut with
    drop_last). With shuffle, the order is a permutation from a generator of its own seeded
    with `seed + epoch` (never chainrule's default one, which the processes need not share):
    call `set_epoch(epoch)` before each epoch for a new order. Pass it as DataLoader's sampler.

    >>> import chainrule as cr
    >>> s = cr.utils.data.DistributedSampler(list(range(5)), num_replicas=2, rank=1, shuffle=False)
    >>> list(s), len(s)
    ([1, 3, 0], 3)
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from chainrule import distributed

            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank} for {num_replicas} "
                             "replicas (expected 0 <= rank < num_replicas)")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        n = len(dataset)
        # drop_last cuts the tail that does not divide; otherwise the order is padded.
        self.num_samples = n // num_replicas if drop_last else -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch the next order is drawn for (the same in every process)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        from chainrule.creation import randperm

        n = len(self.dataset)
        if self.shuffle:
            generator = Generator().manual_seed(self.seed + self.epoch)
            order = randperm(n, generator=generator).numpy()
        else:
            order = np.arange(n)
        order = np.resize(order, self.total_size)  # repeats the start to pad, or cuts
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of `batch_size` (the last one shorter,
    unless `drop_last`).

    >>> import chainrule as cr
    >>> list(cr.utils.data.BatchSampler(range(5), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        # islice takes a batch's indices from the sampler in C: a Python loop appending one index
        # at a time was half the time of a TensorDataset's batch.
        indices = iter(self.sampler)
        while batch := list(itertools.islice(indices, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _fetch(dataset: Any, collate_fn: Any, indices: list[int]) -> Any:
    """One batch: the samples at `indices`, collated."""
    if isinstance(dataset, TensorDataset) and collate_fn is default_collate:
        # One gather per tensor instead of one __getitem__ per sample.
        rows = _core.from_numpy(np.asarray(indices, dtype=np.int64))
        try:
            # index_select straight from the core for tensors outside autograd (the usual data);
            # indexing records the op for one that requires grad.
            return tuple(_wrap(_core.index_select(t._data, 0, rows)) if not t.requires_grad else t[_wrap(rows)]
                         for t in dataset.tensors)
        except IndexError:  # an index counted from the end (or out of range): indexing's rules and errors
            return tuple(t[_wrap(rows)] for t in dataset.tensors)
    return collate_fn([dataset[i] for i in indices])


class DataLoader:
    """Iterates a dataset in batches, with PyTorch's arguments.

    `shuffle` draws a new order every epoch (from `generator`, or from the generator that
    `cr.manual_seed` seeds); `sampler` or `batch_sampler` choose the indices instead.
    `num_workers > 0` loads batches in that many worker processes (see
    `chainrule.utils._workers`): the same batches in the same order as `num_workers=0`, up
    to `prefetch_factor` batches ahead per worker, each worker seeded from the loader's
    generator and then given `worker_init_fn(worker_id)`; `persistent_workers` keeps them
    between epochs. `pin_memory` is accepted and ignored (there is only the CPU).

    >>> import chainrule as cr
    >>> loader = cr.utils.data.DataLoader(cr.utils.data.TensorDataset(cr.arange(5)), batch_size=2)
    >>> [b[0].tolist() for b in loader]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool = False,
                 sampler: Any = None, batch_sampler: Any = None, num_workers: int = 0,
                 collate_fn: Any = None, pin_memory: bool = False, drop_last: bool = False,
                 timeout: float = 0, worker_init_fn: Any = None,
                 multiprocessing_context: Any = None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "") -> None:
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             f"disable multiprocessing (got {num_workers!r})")
        if timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing; "
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if prefetch_factor is not None and (not isinstance(prefetch_factor, int)
                                            or prefetch_factor < 1):
            raise ValueError(f"prefetch_factor should be a positive int, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"DataLoader: generator must be a chainrule.Generator, got "
                            f"{type(generator).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
        elif not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)  # type: ignore[arg-type]
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn or default_collate
        self.num_workers = num_workers
        self.pin_memory = pin_memory  # nothing to pin: CPU memory is all there is
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers > 0 else prefetch_factor
        self.persistent_workers = persistent_workers
        self._iterator: Any = None

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def _fetcher(self) -> Any:
        return functools.partial(_fetch, self.dataset, self.collate_fn)

    def __iter__(self) -> Iterator[Any]:
        # A base seed for the workers is drawn from the loader's generator for every iterator,
        # with or without workers, as PyTorch does: so the sampler's draws that follow, and
        # hence the batches, are the same whatever num_workers is.
        if self.num_workers > 0 and self.persistent_workers and self._iterator is not None:
            self._iterator.reset()
            return self._iterator
        base_seed = _draw_base_seed(self.generator)
        if self.num_workers == 0:
            return self._single_process()
        from chainrule.utils._workers import MultiProcessIterator

        iterator = MultiProcessIterator(self, base_seed)
        if self.persistent_workers:
            self._iterator = iterator
        return iterator

    def _single_process(self) -> Iterator[Any]:
        fetch = self._fetcher()
        for indices in self.batch_sampler:
            yield fetch(indices)


def _draw_base_seed(generator: Generator | None) -> int:
    from chainrule.creation import randint

    return int(randint(0, 2**63 - 1, (), generator=generator).item())
