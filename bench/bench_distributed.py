"""Data-parallel speed over MPI (issue 16), as ratios from one run.

1. The wide MLP (64-1024-1024-10, batch 256 per process, Adam), one thread per process: one
   process training alone against two processes under DistributedDataParallel, in samples per
   second (target >= 1.7x) and in step time at the same per-process batch (target <= 1.15x);
   DDP at bucket_cap_mb=25 and at 1 MB. The first bucket is capped at 1 MiB either way (as in
   PyTorch), so the last layers' gradients start their all-reduce while backward computes the
   first layer's; the 4 MB weight of the middle layer decides the rest (two buckets at both caps).
2. all_reduce of a 25 MB float32 tensor against mpi4py's Allreduce on the same NumPy buffer
   (target >= 0.95x the bandwidth), blocking, and the non-blocking form with wait().

Run: python bench/bench_distributed.py [--steps 40] [--json out.json]
(it launches `mpiexec -n 1` and `mpiexec -n 2` on itself; needs mpi4py and mpiexec).
Medians over the steps after warm-up; these machines are shared, so read the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from machine import cpu_name  # bench/machine.py (the script's own folder)


# ------------------------------------------------------------------ workers (under mpiexec)
def worker_mlp(steps: int) -> dict[str, Any]:
    import numpy as np

    import chainrule as cr
    import chainrule.distributed as dist
    from chainrule.nn.parallel import DistributedDataParallel

    dist.init_process_group(backend="mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    cr.set_num_threads(1)
    rng = np.random.default_rng(rank)
    x = cr.tensor(rng.standard_normal((256, 64)).astype(np.float32))
    y = cr.tensor(rng.integers(0, 10, 256))
    loss_fn = cr.nn.CrossEntropyLoss()
    results: dict[str, Any] = {}
    # With 2 processes, "plain" trains without DDP in both at once: what the machine gives two
    # processes that never talk, the baseline that isolates the cost of communication.
    configs = [("plain", None)] + ([("ddp 25 MB", 25.0), ("ddp 1 MB", 1.0)] if world > 1 else [])
    for name, bucket_cap_mb in configs:
        cr.manual_seed(0)
        model = cr.nn.Sequential(cr.nn.Linear(64, 1024), cr.nn.ReLU(), cr.nn.Linear(1024, 1024),
                                 cr.nn.ReLU(), cr.nn.Linear(1024, 10))
        net = model if bucket_cap_mb is None else DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb)
        optimizer = cr.optim.Adam(net.parameters(), lr=1e-4)
        times = []
        for step in range(steps + 5):
            # From barrier to barrier: a step lasts until every process has finished it, with
            # DDP or without (otherwise the processes' own jitter would count only for DDP,
            # whose all-reduce waits for the slowest).
            dist.barrier()
            start = time.perf_counter()
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
            dist.barrier()
            if step >= 5:
                times.append(time.perf_counter() - start)
        local = np.array([statistics.median(times)])
        dist.all_reduce(cr.from_numpy(local), op=dist.ReduceOp.MAX)  # the slower process counts
        results[name] = float(local[0])
        if bucket_cap_mb is not None:
            results[name + " buckets"] = len(net._reducer.buckets)
    dist.destroy_process_group()
    return results


def worker_torch_mlp(steps: int) -> dict[str, Any]:
    """The peer: the same MLP and steps with PyTorch's DDP over its gloo backend (mpiexec only
    starts the processes; gloo finds its peers through MASTER_ADDR and MASTER_PORT)."""
    import torch
    import torch.distributed as tdist

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1")))
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(rank)
    x = torch.randn(256, 64, generator=generator)
    y = torch.randint(0, 10, (256,), generator=generator)
    loss_fn = torch.nn.CrossEntropyLoss()
    results: dict[str, Any] = {}
    configs = [("plain", False)] + ([("ddp 25 MB", True)] if world > 1 else [])
    for name, wrap in configs:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(),
                                    torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                    torch.nn.Linear(1024, 10))
        net = torch.nn.parallel.DistributedDataParallel(model) if wrap else model
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
        times = []
        for step in range(steps + 5):
            tdist.barrier()
            start = time.perf_counter()
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
            tdist.barrier()
            if step >= 5:
                times.append(time.perf_counter() - start)
        local = torch.tensor([statistics.median(times)], dtype=torch.float64)
        tdist.all_reduce(local, op=tdist.ReduceOp.MAX)
        results[name] = float(local[0])
    tdist.destroy_process_group()
    return results


def worker_all_reduce(steps: int) -> dict[str, Any]:
    import chainrule as cr
    import chainrule.distributed as dist

    dist.init_process_group(backend="mpi")  # first: it sets Open MPI's options before MPI starts
    from mpi4py import MPI

    t = cr.ones(25 * 1024 * 1024 // 4)  # 25 MiB of float32
    buffer = t.numpy()  # the same memory
    comm = MPI.COMM_WORLD
    ours, theirs, ours_async = [], [], []
    for step in range(steps + 3):
        comm.Barrier()
        start = time.perf_counter()
        dist.all_reduce(t)
        middle = time.perf_counter()
        comm.Barrier()
        middle2 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        end = time.perf_counter()
        comm.Barrier()
        start3 = time.perf_counter()
        dist.all_reduce(t, async_op=True).wait()
        end3 = time.perf_counter()
        if step >= 3:
            ours.append(middle - start)
            theirs.append(end - middle2)
            ours_async.append(end3 - start3)
        t.fill_(1.0)  # keep the values finite
    result = {"chainrule": statistics.median(ours), "mpi4py": statistics.median(theirs),
              "chainrule async": statistics.median(ours_async), "bytes": t.numel() * 4}
    dist.destroy_process_group()
    return result


# ------------------------------------------------------------------ the driver
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(n: int, worker: str, steps: int) -> dict[str, Any]:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("needs mpiexec and mpi4py: pip install \"chainrule[distributed]\"")
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout
    flags = ["--allow-run-as-root"] if "Open MPI" in version and os.geteuid() == 0 else []
    if n > (os.cpu_count() or 1):
        flags.append("--oversubscribe")
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    out = subprocess.run([mpiexec, *flags, "-n", str(n), sys.executable, os.path.abspath(__file__),
                          "--worker", worker, "--steps", str(steps)],
                         capture_output=True, text=True, env=env, timeout=1200)
    if out.returncode != 0:
        sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        workers = {"mlp": worker_mlp, "torch_mlp": worker_torch_mlp, "all_reduce": worker_all_reduce}
        result = workers[args.worker](args.steps)
        if os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")) == "0":
            print(json.dumps(result))
        return

    import chainrule as cr

    print(f"{cpu_name()}, {os.cpu_count()} cores; chainrule kernels: {cr._core.active_isa()}; "
          f"one thread per process; medians of {args.steps} steps")
    one = launch(1, "mlp", args.steps)
    two = launch(2, "mlp", args.steps)
    reduce = launch(2, "all_reduce", args.steps)
    single = one["plain"]
    print("\nwide MLP 64-1024-1024-10, batch 256 per process, Adam")
    print(f"  1 process              {single * 1e3:7.2f} ms/step  {256 / single:8.0f} samples/s")
    both = two["plain"]
    print(f"  2 processes, no DDP    {both * 1e3:7.2f} ms/step  (each alone on its half: the "
          f"machine's share, {both / single:.2f}x one process)")
    for name in ("ddp 25 MB", "ddp 1 MB"):
        step = two[name]
        print(f"  2 processes, {name:9s} {step * 1e3:7.2f} ms/step  {512 / step:8.0f} samples/s"
              f"  = {512 / step / (256 / single):.2f}x samples/s (target >= 1.7), step "
              f"{step / single:.2f}x (target <= 1.15), {step / both:.2f}x no DDP; "
              f"{two[name + ' buckets']} bucket(s)")
    try:
        import torch  # noqa: F401  (the peer is optional)
    except ImportError:
        torch_one = torch_two = None
    else:
        torch_one = launch(1, "torch_mlp", args.steps)
        torch_two = launch(2, "torch_mlp", args.steps)
        t_single, t_both, t_ddp = torch_one["plain"], torch_two["plain"], torch_two["ddp 25 MB"]
        print(f"  PyTorch (gloo): 1 process {t_single * 1e3:.2f} ms/step, 2 without DDP "
              f"{t_both * 1e3:.2f}, 2 with DDP {t_ddp * 1e3:.2f} = {2 * t_single / t_ddp:.2f}x "
              f"samples/s, step {t_ddp / t_single:.2f}x, {t_ddp / t_both:.2f}x no DDP")
        print(f"  chainrule / PyTorch step time: 1 process {single / t_single:.2f}x, "
              f"2 with DDP {two['ddp 25 MB'] / t_ddp:.2f}x")
    megabytes = reduce["bytes"] / 2**20
    print(f"\nall_reduce of {megabytes:.0f} MiB float32 on 2 processes")
    print(f"  mpi4py Allreduce (NumPy buffer)   {reduce['mpi4py'] * 1e3:7.2f} ms  "
          f"{megabytes / 1024 / reduce['mpi4py']:6.2f} GiB/s")
    for name in ("chainrule", "chainrule async"):
        print(f"  {name + ' all_reduce':32s}  {reduce[name] * 1e3:7.2f} ms  "
              f"{megabytes / 1024 / reduce[name]:6.2f} GiB/s  = "
              f"{reduce['mpi4py'] / reduce[name]:.2f}x mpi4py's bandwidth (target >= 0.95)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"one_process": one, "two_processes": two, "all_reduce": reduce,
                       "torch_one_process": torch_one, "torch_two_processes": torch_two}, f,
                      indent=1)


if __name__ == "__main__":
    main()
