"""Run under `mpiexec -n 2 ... digits_resume.py MODE CHECKPOINT EPOCHS RESULT`, for the
killed-and-resumed test of examples/digits_ddp.py:
- full:   EPOCHS epochs without interruption; rank 0 saves the final parameters to RESULT;
- killed: rank 1 kills itself (SIGKILL) right after epoch 2's checkpoint;
- resume: continues from CHECKPOINT to EPOCHS and saves the final parameters to RESULT."""
from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

import chainrule as cr
import chainrule.distributed as dist

mode, checkpoint, epochs, result = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
example = Path(__file__).resolve().parents[2] / "examples" / "digits_ddp.py"
spec = importlib.util.spec_from_file_location("digits_ddp", example)
digits_ddp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(digits_ddp)


def die_after_epoch_2(epoch: int) -> None:
    if epoch == 2 and dist.get_rank() == 1:
        dist.barrier()  # rank 0 has written epoch 2's checkpoint
        os.kill(os.getpid(), signal.SIGKILL)
    elif epoch == 2:
        dist.barrier()


dist.init_process_group(backend="mpi", timeout=60)
outcome = digits_ddp.train(epochs=epochs, checkpoint=checkpoint, resume=mode == "resume",
                           verbose=False,
                           after_epoch=die_after_epoch_2 if mode == "killed" else None)
if dist.get_rank() == 0:
    cr.save(outcome["model"].state_dict(), result)
    print(f"{mode}: test accuracy {outcome['accuracy']:.4f}")
dist.destroy_process_group()
