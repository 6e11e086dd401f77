"""Run under `mpiexec -n 2 ... faults.py MODE`: rank 1 fails while rank 0 waits for it in an
all_reduce. The job must end with a non-zero status within seconds, never hang:
- raise: an uncaught exception (the excepthook aborts the job);
- kill:  SIGKILL, as the OOM killer would (mpiexec ends the job);
- exit:  sys.exit(3) (the watchdog on rank 0 aborts once the 2 s timeout has passed).
The other modes run with a 60 s timeout, so what ends them is the fault's own mechanism."""
from __future__ import annotations

import os
import signal
import sys
import time

import chainrule as cr
import chainrule.distributed as dist

mode = sys.argv[1]
dist.init_process_group(backend="mpi", timeout=2.0 if mode == "exit" else 60.0)
t = cr.ones(4)
dist.all_reduce(t)
if dist.get_rank() == 1:
    time.sleep(0.5)  # rank 0 is in its next all_reduce by now
    if mode == "raise":
        raise ValueError("rank 1 fails on purpose")
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "exit":
        sys.exit(3)
dist.all_reduce(t)
print(f"rank {dist.get_rank()} was not stopped", flush=True)
