"""Data-parallel training over MPI, in PyTorch's spelling (`torch.distributed` scripts port).

Launch N processes with `mpiexec -n N python script.py`; each calls `init_process_group()`, and
then the collectives combine tensors across them, in place on the tensors' memory:

    import chainrule as cr
    import chainrule.distributed as dist

    dist.init_process_group(backend="mpi")
    t = cr.full((3,), float(dist.get_rank()))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)   # every process: 0 + 1 + ... + (N - 1)

`cr.nn.parallel.DistributedDataParallel` builds on these to average gradients during backward,
and `cr.utils.data.DistributedSampler` gives each process its share of a dataset.
Needs mpi4py and an MPI library: `pip install "chainrule[distributed]"`.
"""
from __future__ import annotations

from chainrule.distributed.collectives import (ReduceOp, Work, all_gather, all_gather_into_tensor,
                                               all_reduce, barrier, broadcast, reduce)
from chainrule.distributed.process_group import (destroy_process_group, get_backend, get_rank,
                                                 get_world_size, init_process_group, is_available,
                                                 is_initialized, is_mpi_available)

__all__ = ["ReduceOp", "Work", "all_gather", "all_gather_into_tensor", "all_reduce", "barrier",
           "broadcast", "reduce", "destroy_process_group", "get_backend", "get_rank",
           "get_world_size", "init_process_group", "is_available", "is_initialized",
           "is_mpi_available"]
