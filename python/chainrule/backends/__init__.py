"""`cr.backends`, as a CPU-only PyTorch answers it: neither cuDNN nor Metal (MPS) is there.

Scripts set `backends.cudnn.deterministic = True` and `backends.cudnn.benchmark = False` for
reproducible GPU runs, and ask `backends.mps.is_available()`; here the flags are kept (they
change nothing: chainrule's CPU kernels are deterministic) and every backend is unavailable.
"""
from chainrule.backends import cudnn, mps

__all__ = ["cudnn", "mps"]
