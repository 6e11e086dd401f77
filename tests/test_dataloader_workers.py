"""DataLoader(num_workers=N): worker processes as in PyTorch, batches as without them."""
from __future__ import annotations

import gc
import multiprocessing
import os
import time

import chainrule as cr
import numpy as np
import pytest
from chainrule.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
    get_worker_info,
)


def no_workers_left() -> bool:
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


class Squares:
    """Sample i is (i, i*i) as NumPy-free Python numbers, plus which worker made it."""

    def __len__(self) -> int:
        return 11

    def __getitem__(self, i: int) -> dict:
        info = get_worker_info()
        return {"i": i, "square": float(i * i), "worker": -1 if info is None else info.id}


def rows(loader: DataLoader) -> list:
    return [(b["i"].tolist(), b["square"].tolist()) for b in loader]


def tensor_batches(loader: DataLoader) -> list:
    return [[t.tolist() for t in batch] for batch in loader]


@pytest.mark.parametrize("num_workers,prefetch_factor", [(1, 2), (2, 1), (3, 4)])
def test_same_batches_in_the_same_order_as_without_workers(num_workers, prefetch_factor):
    data = TensorDataset(cr.arange(23).float() * 0.5, cr.arange(23))

    def epochs(**options):
        cr.manual_seed(7)
        loader = DataLoader(data, batch_size=4, shuffle=True, **options)
        return [tensor_batches(loader) for _ in range(2)]

    expected = epochs()
    assert expected[0] != expected[1]  # a new order each epoch
    assert epochs(num_workers=num_workers, prefetch_factor=prefetch_factor) == expected
    # samples that go through collate_fn and a sampler of the dataset's own
    cr.manual_seed(3)
    plain = rows(DataLoader(Squares(), batch_size=3, shuffle=True, drop_last=True))
    cr.manual_seed(3)
    assert rows(DataLoader(Squares(), batch_size=3, shuffle=True, drop_last=True,
                           num_workers=num_workers, prefetch_factor=prefetch_factor)) == plain
    assert no_workers_left()


def test_the_loaders_generator_decides_the_order():
    data = TensorDataset(cr.arange(10))

    def order(num_workers: int, global_seed: int) -> list:
        cr.manual_seed(global_seed)
        loader = DataLoader(data, batch_size=10, shuffle=True, num_workers=num_workers,
                            generator=cr.Generator().manual_seed(42))
        return next(iter(loader))[0].tolist()

    assert order(0, 1) == order(0, 2) == order(2, 3)
    assert sorted(order(0, 1)) == list(range(10))
    sampler = RandomSampler(range(10), generator=cr.Generator().manual_seed(42))
    assert len(sampler) == 10 and sorted(sampler) == list(range(10))
    with_replacement = list(RandomSampler(range(3), replacement=True, num_samples=50,
                                          generator=cr.Generator().manual_seed(0)))
    assert len(with_replacement) == 50 and set(with_replacement) <= {0, 1, 2}


def test_worker_assignment_and_info_match_pytorch(torch):
    class TorchSquares(torch.utils.data.Dataset):
        def __len__(self):
            return 11

        def __getitem__(self, i):
            info = torch.utils.data.get_worker_info()
            return {"i": i, "square": float(i * i), "worker": info.id}

    def summary(batches):
        return [(b["i"].tolist(), b["square"].tolist(), b["worker"].tolist()) for b in batches]

    for num_workers, batch_size in ((2, 3), (3, 2)):
        theirs = summary(torch.utils.data.DataLoader(TorchSquares(), batch_size=batch_size,
                                                     num_workers=num_workers))
        ours = summary(DataLoader(Squares(), batch_size=batch_size, num_workers=num_workers))
        assert ours == theirs  # batch k from worker k mod N, same contents
    assert no_workers_left()


class Seeds:
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple:
        info = get_worker_info()
        return (info.id, info.num_workers, info.seed, cr.rand(1).item(), float(np.random.rand()),
                float(os.environ.get("CHAINRULE_TEST_INIT", "-1")))


def init_worker(worker_id: int) -> None:
    os.environ["CHAINRULE_TEST_INIT"] = str(10 + worker_id)


def test_workers_are_seeded_and_initialised():
    def run() -> list:
        cr.manual_seed(123)
        loader = DataLoader(Seeds(), batch_size=1, num_workers=2, worker_init_fn=init_worker)
        return [tuple(float(x) for x in batch) for batch in loader]

    first = run()
    assert first == run()  # the same seed, the same worker seeds and draws
    ids = [int(b[0]) for b in first]
    assert ids == [0, 1, 0, 1] and all(b[1] == 2 for b in first)
    base = {b[2] - b[0] for b in first}
    assert len(base) == 1  # seed = base seed + worker id, as in PyTorch
    assert first[0][3] != first[1][3] and first[0][4] != first[1][4]  # streams differ by worker
    assert [b[5] for b in first] == [10, 11, 10, 11]  # worker_init_fn ran in each worker
    assert "CHAINRULE_TEST_INIT" not in os.environ


class Pids:
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> tuple:
        return i, os.getpid()


def test_persistent_workers_live_across_epochs():
    loader = DataLoader(Pids(), batch_size=2, num_workers=2, persistent_workers=True,
                        pin_memory=True)
    first = [(b[0].tolist(), b[1].tolist()) for b in loader]
    abandoned = iter(loader)
    next(abandoned)  # an epoch left midway: its batches in flight are dropped
    second = [(b[0].tolist(), b[1].tolist()) for b in loader]
    assert [i for i, _ in first] == [i for i, _ in second] == [[0, 1], [2, 3], [4, 5]]
    pids = {p for _, ps in first + second for p in ps}
    assert len(pids) == 2 and os.getpid() not in pids
    assert len(multiprocessing.active_children()) == 2
    del loader, abandoned
    gc.collect()
    assert no_workers_left()


def test_clean_shutdown_when_dropped_midway():
    loader = DataLoader(Pids(), batch_size=1, num_workers=3)
    iterator = iter(loader)
    next(iterator)
    assert len(multiprocessing.active_children()) == 3
    del iterator
    assert no_workers_left()
    for batch in loader:  # breaking out of a loop drops the iterator too
        break
    del batch
    assert no_workers_left()


class Failing:
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> int:
        if i == 3:
            raise KeyError(f"no sample {i}")
        return i


class Dying:
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> int:
        if i == 3:
            os._exit(7)  # a crash: no exception, no cleanup
        return i


class Slow:
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        time.sleep(1.5)
        return i


def test_errors_in_workers():
    with pytest.raises(KeyError, match=r"(?s)DataLoader worker process 1.*no sample 3"):
        list(DataLoader(Failing(), batch_size=2, num_workers=2))
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+ \(exit code 7\)\) "
                                           "exited unexpectedly"):
        list(DataLoader(Dying(), batch_size=1, num_workers=2))
    with pytest.raises(RuntimeError, match="timed out after 0.3 seconds"):
        list(DataLoader(Slow(), num_workers=1, timeout=0.3))
    gc.collect()
    assert no_workers_left()


def test_argument_checks_as_pytorch():
    data = TensorDataset(cr.arange(4))
    with pytest.raises(ValueError, match="non-negative"):
        DataLoader(data, num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(data, prefetch_factor=2)
    with pytest.raises(ValueError, match="persistent_workers"):
        DataLoader(data, persistent_workers=True)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(data, sampler=SequentialSampler(data), shuffle=True)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(data, batch_sampler=BatchSampler(range(4), 2, False), batch_size=2)
    with pytest.raises(ValueError, match="timeout"):
        DataLoader(data, timeout=-1)
    with pytest.raises(TypeError, match="Generator"):
        DataLoader(data, generator=np.random.default_rng())
    with pytest.raises(ValueError, match="num_samples"):
        DataLoader(TensorDataset(cr.zeros(0, 2)), shuffle=True)  # as PyTorch's RandomSampler


def test_samplers_match_pytorch(torch):
    for drop_last in (False, True):
        ours = list(BatchSampler(SequentialSampler(range(10)), 3, drop_last))
        theirs = list(torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)),
                                                    3, drop_last))
        assert ours == theirs
        assert len(BatchSampler(range(10), 3, drop_last)) == len(theirs)


def test_samplers_and_batch_samplers():
    assert list(BatchSampler(range(7), 3, False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, True)) == [[0, 1, 2], [3, 4, 5]]
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    loader = DataLoader(TensorDataset(cr.arange(7)),
                        batch_sampler=BatchSampler(range(7), 4, drop_last=False))
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6]] and len(loader) == 2
    sampled = DataLoader(TensorDataset(cr.arange(5)), sampler=[4, 3, 2, 1, 0], batch_size=2)
    assert [b[0].tolist() for b in sampled] == [[4, 3], [2, 1], [0]]
