"""DataLoader worker processes, as PyTorch runs them.

The main process owns the sampler: it hands batch number i (a list of dataset indices) to worker
i mod num_workers through that worker's index queue, at most `prefetch_factor` batches ahead per
worker, and puts the results, which arrive on one shared queue in any order, back in batch
order. So a loader with workers yields the same batches in the same order as one without, for
the same seed: only where the work happens changes.

Each worker seeds chainrule's default generator, `random` and NumPy's global generator from the
iterator's base seed plus its id (`get_worker_info().seed`), then runs `worker_init_fn(id)`.
Workers use one OpenMP thread each (as PyTorch's do), so N workers do not fight over the cores
with N teams. Batches travel pickled, their tensors as NumPy arrays.

Shutting down: when the data runs out (unless `persistent_workers`), when the iterator is
dropped midway, or when the loader is, each worker gets a stop message and is joined (and
terminated if it does not stop within a few seconds). A worker also exits by itself when the
main process is gone. A worker that dies (killed, segfault, os._exit) makes the next batch
raise RuntimeError naming its pid and exit code; an exception raised inside a worker is raised
again in the main process with the worker's traceback in its message.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import random
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from chainrule.tensor import Tensor

# How often a waiting worker checks that the main process is alive, and a waiting main process
# that its workers are (seconds).
STATUS_CHECK_INTERVAL = 0.5
JOIN_TIMEOUT = 5.0


@dataclass(frozen=True)
class WorkerInfo:
    """What `get_worker_info()` returns inside a worker: its `id` (0 .. num_workers-1),
    `num_workers`, the `seed` it was given, and its copy of the `dataset`."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This worker's WorkerInfo inside a DataLoader worker process; None in the main process.

    >>> import chainrule as cr
    >>> cr.utils.data.get_worker_info() is None
    True
    """
    return _worker_info


# ------------------------------------------------------------------ batches through a pipe
class _Array:
    """A tensor in transit: its NumPy array (pickles as raw bytes)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _pack(value: Any) -> Any:
    if isinstance(value, Tensor):
        return _Array(np.ascontiguousarray(value.detach().numpy()))
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(_pack(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_pack(v) for v in value)
    if isinstance(value, dict):
        return {k: _pack(v) for k, v in value.items()}
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, _Array):
        from chainrule.creation import from_numpy

        return from_numpy(value.array)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_unpack(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_unpack(v) for v in value)
    if isinstance(value, dict):
        return {k: _unpack(v) for k, v in value.items()}
    return value


class _WorkerError:
    """An exception raised in a worker, carried back as its type and formatted traceback."""

    def __init__(self, worker_id: int, error: BaseException) -> None:
        self.type = type(error)
        self.text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.worker_id = worker_id

    def reraise(self) -> None:
        message = (f"Caught {self.type.__name__} in DataLoader worker process "
                   f"{self.worker_id}.\nOriginal {self.text}")
        try:
            error = self.type(message)
        except Exception:  # an exception type that cannot be made from one message
            raise RuntimeError(message) from None
        try:
            raise error
        finally:
            del error  # no cycle exception -> traceback -> this frame -> exception


class _Resume:
    """Sent to a persistent worker at a new epoch; it echoes it back once the batches it was
    given before are all out, so the main process can drop those and start afresh."""


# ------------------------------------------------------------------ the worker process
def _worker_loop(dataset: Any, fetch: Callable[[list[int]], Any], index_queue: Any,
                 result_queue: Any, worker_id: int, num_workers: int, seed: int,
                 worker_init_fn: Callable[[int], None] | None, parent_pid: int) -> None:
    global _worker_info
    import chainrule

    try:
        chainrule.set_num_threads(1)
        chainrule.manual_seed(seed)
        random.seed(seed)
        np.random.seed(np.random.SeedSequence([seed, worker_id]).generate_state(4))
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        init_error = None
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
    except Exception as error:
        init_error = _WorkerError(worker_id, error)
    while True:
        try:
            task = index_queue.get(timeout=STATUS_CHECK_INTERVAL)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the main process is gone: so is our purpose
                return
            continue
        except (KeyboardInterrupt, EOFError, OSError):
            return
        if task is None:
            return
        if isinstance(task, _Resume):
            result_queue.put((task, None))
            continue
        batch_number, indices = task
        if init_error is not None:
            result_queue.put((batch_number, init_error))
            continue
        try:
            data = _pack(fetch(indices))
        except Exception as error:
            data = _WorkerError(worker_id, error)
        result_queue.put((batch_number, data))


# ------------------------------------------------------------------ the main side
class MultiProcessIterator:
    """Iterates a DataLoader with `num_workers` processes. With `persistent_workers` the
    loader keeps one of these and `reset()`s it each epoch instead of starting new workers."""

    def __init__(self, loader: Any, base_seed: int) -> None:
        self.shut_down = False
        self.owner = os.getpid()  # a forked worker inherits this object: only its maker stops it
        self.workers: list[Any] = []
        self.index_queues: list[Any] = []
        self.result_queue: Any = None
        # What the loader says, copied: holding the loader would make a cycle (a persistent
        # loader holds its iterator), and the garbage collector may close the queues of a
        # cycle before this object's __del__ could tell the workers to stop.
        self.batch_sampler = loader.batch_sampler
        self.persistent = loader.persistent_workers
        self.num_workers = loader.num_workers
        self.prefetch_factor = loader.prefetch_factor
        self.timeout = loader.timeout
        context = loader.multiprocessing_context
        if context is None or isinstance(context, str):
            context = multiprocessing.get_context(context)
        self.result_queue = context.Queue()
        try:
            for worker_id in range(self.num_workers):
                index_queue = context.Queue()
                index_queue.cancel_join_thread()  # a dead worker's queue must not block exit
                worker = context.Process(
                    target=_worker_loop, daemon=True,
                    args=(loader.dataset, loader._fetcher(), index_queue, self.result_queue,
                          worker_id, self.num_workers, base_seed + worker_id,
                          loader.worker_init_fn, os.getpid()))
                worker.start()
                self.index_queues.append(index_queue)
                self.workers.append(worker)
        except BaseException:
            self.shutdown()
            raise
        self.reset(first=True)

    def reset(self, first: bool = False) -> None:
        """Starts an epoch: a fresh pass over the sampler, and the first batches handed out."""
        self.batches = iter(self.batch_sampler)
        self.next_to_send = 0      # batch number the next task gets
        self.next_to_yield = 0     # batch number the caller gets next
        self.waiting: dict[int, Any] = {}   # batch number -> result that came early
        self.outstanding = 0
        self.sampler_done = False
        if not first:
            # Drop what the last epoch left in flight: each worker echoes a _Resume after its
            # older tasks, so once all echoes are back, nothing old remains.
            for index_queue in self.index_queues:
                index_queue.put(_Resume())
            echoes = 0
            while echoes < self.num_workers:
                batch_number, _ = self._get()
                echoes += isinstance(batch_number, _Resume)
        for _ in range(self.prefetch_factor * self.num_workers):
            self._send()

    def _send(self) -> None:
        if self.sampler_done:
            return
        try:
            indices = next(self.batches)
        except StopIteration:
            self.sampler_done = True
            return
        # Batch i goes to worker i mod N, PyTorch's round robin.
        self.index_queues[self.next_to_send % self.num_workers].put((self.next_to_send, indices))
        self.next_to_send += 1
        self.outstanding += 1

    def _get(self) -> tuple[Any, Any]:
        """The next result from any worker; RuntimeError when a worker died or `timeout`
        passed."""
        waited = 0.0
        while True:
            interval = STATUS_CHECK_INTERVAL
            if self.timeout > 0:
                interval = min(interval, self.timeout - waited)
            try:
                return self.result_queue.get(timeout=interval)
            except queue.Empty:
                waited += interval
            dead = [w for w in self.workers if not w.is_alive()]
            if dead:
                self.shutdown()
                details = ", ".join(f"{w.pid} (exit code {w.exitcode})" for w in dead)
                raise RuntimeError(f"DataLoader worker (pid(s) {details}) exited unexpectedly")
            if self.timeout > 0 and waited >= self.timeout:
                raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds")

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.shut_down:
            raise StopIteration
        while self.next_to_yield not in self.waiting:
            if self.outstanding == 0:
                if not self.persistent:
                    self.shutdown()
                raise StopIteration
            batch_number, data = self._get()
            if isinstance(batch_number, _Resume):
                continue
            self.waiting[batch_number] = data
        data = self.waiting.pop(self.next_to_yield)
        self.next_to_yield += 1
        self.outstanding -= 1
        self._send()
        if isinstance(data, _WorkerError):
            data.reraise()
        return _unpack(data)

    def shutdown(self) -> None:
        """Stops and joins every worker (terminating one that does not stop); idempotent."""
        if self.shut_down or os.getpid() != self.owner:
            return
        self.shut_down = True
        for index_queue in self.index_queues:
            try:
                index_queue.put(None)
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.join(JOIN_TIMEOUT)
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for q in self.index_queues + ([self.result_queue] if self.result_queue else []):
            q.cancel_join_thread()
            q.close()

    def __del__(self) -> None:
        if hasattr(self, "shut_down"):
            self.shutdown()
