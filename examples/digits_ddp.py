"""Handwritten digits on N processes: examples/digits.py's MLP with DistributedDataParallel.

Every process holds the whole model and trains on its share of each epoch (DistributedSampler);
backward averages the gradients across processes, so all of them take the same Adam steps as
one process on the whole batch of 32 would. Rank 0 prints the progress, checkpoints the model
and the optimizer with cr.save after every epoch, and `--resume` continues from the last
checkpoint (only rank 0 reads it; the others receive it by broadcast).

Run: pip install ".[distributed,examples]" && mpiexec -n 2 python examples/digits_ddp.py
     (as root, Open MPI wants: mpiexec --allow-run-as-root --oversubscribe -n 2 ...)
     options: [--epochs 20] [--seed 0] [--checkpoint digits_ddp.safetensors] [--resume]
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable

import numpy as np

import chainrule as cr
import chainrule.distributed as dist
from chainrule.nn.parallel import DistributedDataParallel
from chainrule.utils.extras import require

DISTRIBUTED_EXTRA = ('pip install "chainrule[distributed]" (from a checkout: pip install '
                     '".[distributed]"), which brings mpi4py and Open MPI\'s mpiexec')


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same split and standardisation as examples/digits.py (every process loads it)."""
    datasets = require("sklearn.datasets", package="scikit-learn")
    train_test_split = require("sklearn.model_selection", package="scikit-learn").train_test_split

    digits = datasets.load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed,
                                                        stratify=y)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0) + 1e-6
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def save_checkpoint(path: str, epoch: int, model: cr.nn.Module, optimizer: Any) -> None:
    """Rank 0 writes the model, the optimizer's state and the epoch in one safetensors file;
    written beside and renamed into place, so a process killed mid-write leaves the previous
    checkpoint whole."""
    if dist.get_rank() != 0:
        return
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            state[f"optimizer.{index}.{key}"] = value if isinstance(value, cr.Tensor) else cr.tensor(value)
    state["epoch"] = cr.tensor(epoch)
    cr.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_checkpoint(path: str, model: cr.nn.Module, optimizer: Any) -> int:
    """Restores the last checkpoint into every process; returns the epochs it had done (0
    without one). Rank 0 reads the file and broadcasts each tensor, so on many machines only
    rank 0's needs it."""
    saved = cr.load(path) if dist.get_rank() == 0 and os.path.exists(path) else {}
    epoch = saved.get("epoch", cr.tensor(0)).clone()
    dist.broadcast(epoch, 0)
    if epoch.item() == 0:
        return 0

    def received(name: str, like: cr.Tensor) -> cr.Tensor:
        value = saved[name].clone() if saved else cr.zeros_like(like)
        dist.broadcast(value, 0)
        return value

    model.load_state_dict({k: received(f"model.{k}", v) for k, v in model.state_dict().items()})
    optimizer_state = optimizer.state_dict()
    for index, p in enumerate(model.parameters()):
        optimizer_state["state"][index] = {
            "step": received(f"optimizer.{index}.step", cr.tensor(0.0)),  # a float32 count, as in PyTorch
            "exp_avg": received(f"optimizer.{index}.exp_avg", p.detach()),
            "exp_avg_sq": received(f"optimizer.{index}.exp_avg_sq", p.detach())}
    optimizer.load_state_dict(optimizer_state)
    return int(epoch.item())


def train(epochs: int = 20, seed: int = 0, lr: float = 1e-3, batch_size: int = 32,
          checkpoint: str | None = None, resume: bool = False, verbose: bool = True,
          after_epoch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Trains on every process of the job (call init_process_group first); `batch_size` is the
    global batch, split evenly between the processes. Returns the final test accuracy."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} does not split evenly over {world} processes")
    cr.manual_seed(seed)
    x_train, x_test, y_train, y_test = load_data(seed)
    dataset = cr.utils.data.TensorDataset(cr.tensor(x_train), cr.tensor(y_train))
    sampler = cr.utils.data.DistributedSampler(dataset, shuffle=True, seed=seed)
    loader = cr.utils.data.DataLoader(dataset, batch_size=batch_size // world, sampler=sampler)
    model = cr.nn.Sequential(cr.nn.Linear(64, 128), cr.nn.ReLU(), cr.nn.Linear(128, 10))
    optimizer = cr.optim.Adam(model.parameters(), lr=lr)
    done = load_checkpoint(checkpoint, model, optimizer) if checkpoint and resume else 0
    if verbose and rank == 0 and done:
        print(f"resuming from {checkpoint} after epoch {done}")
    ddp = DistributedDataParallel(model)  # copies rank 0's parameters to every process
    loss_fn = cr.nn.CrossEntropyLoss()
    test_x, test_y = cr.tensor(x_test), cr.tensor(y_test)

    accuracy = 0.0
    for epoch in range(done + 1, epochs + 1):
        start = time.perf_counter()
        sampler.set_epoch(epoch)  # a new order each epoch, the same in every process
        ddp.train()
        total = cr.zeros(2, dtype=cr.float64)  # this process's (sum of losses, batches)
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(ddp(xb), yb)
            loss.backward()  # returns with the gradients averaged over the processes
            optimizer.step()
            total += cr.tensor([loss.item(), 1.0], dtype=cr.float64)
        dist.all_reduce(total)  # the mean loss over every process's batches
        ddp.eval()
        with cr.no_grad():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        if checkpoint:
            save_checkpoint(checkpoint, epoch, model, optimizer)
        if verbose and rank == 0:
            loss_mean = total[0].item() / total[1].item()
            print(f"epoch {epoch:2d}  loss {loss_mean:.4f}  test accuracy {accuracy:.4f}  "
                  f"({time.perf_counter() - start:.3f} s, {world} processes)", flush=True)
        if after_epoch is not None:
            after_epoch(epoch)
    if verbose and rank == 0:
        print(f"test accuracy {accuracy:.4f}")
    return {"accuracy": accuracy, "model": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32, help="global, over all processes")
    parser.add_argument("--checkpoint", default="digits_ddp.safetensors",
                        help="written by rank 0 after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    args = parser.parse_args()
    require("mpi4py", install=DISTRIBUTED_EXTRA)
    dist.init_process_group(backend="mpi")
    train(args.epochs, args.seed, args.lr, args.batch_size, args.checkpoint, args.resume)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
