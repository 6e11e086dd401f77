"""Data parallelism across processes (cr.nn.parallel.DistributedDataParallel)."""
from chainrule.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
