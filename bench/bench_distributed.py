"""Data-parallel speed over MPI (issue 16): ratios, medians over steps and over repeated runs.

1. The wide MLP (64-1024-1024-10, batch 256 per process, Adam), one thread per process: one
   process training alone against two processes under DistributedDataParallel, in samples per
   second (target >= 1.7x) and in step time at the same per-process batch (target <= 1.15x);
   DDP at bucket_cap_mb=25, with gradient_as_bucket_view, and at 1 MB. The first bucket is
   capped at 1 MiB either way (as in PyTorch), so the last layers' gradients start their
   all-reduce while backward computes the first layer's; the 4 MB weight of the middle layer
   decides the rest (two buckets at both caps).
   Fairness: in the 2-process job every configuration takes its turn at every step (rotating
   order), and "alone" is rank 0 training by itself at its turn while rank 1 sleeps (it polls a
   barrier every 0.2 ms), so the single-process baseline sees the same machine minutes as the
   DDP steps; the separate `mpiexec -n 1` job is printed beside it. The ratios use "alone";
   the step over the own job's is printed too (the own job keeps one model hot in the caches,
   where the turns make every configuration, "alone" included, follow another's step: on an
   idle machine its step was 12% shorter than "alone").
2. all_reduce of a 25 MB float32 tensor against mpi4py's Allreduce on the same NumPy buffer
   (target >= 0.95x the bandwidth), blocking, and the non-blocking form with wait(); each
   repetition resets the buffer, passes a barrier and times one call, in rotating order.
3. PyTorch's DDP over gloo on the same MLP, when torch is installed (rendezvous through a file,
   so no port can clash; a failing peer is reported and never stops the figures above).

Run: python bench/bench_distributed.py [--steps 40] [--repeat 3] [--wait-idle S] [--json out.json]
(it launches `mpiexec -n 1` and `mpiexec -n 2` on itself; needs mpi4py and mpiexec).
These machines are shared: the figures are medians over the steps of a run, and the summary the
medians over the runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from machine import cpu_name  # bench/machine.py (the script's own folder)

# ------------------------------------------------------------------ workers (under mpiexec)
DDP_CONFIGS: dict[str, dict[str, Any]] = {
    "ddp 25 MB": {"bucket_cap_mb": 25.0},
    "ddp 25 MB view": {"bucket_cap_mb": 25.0, "gradient_as_bucket_view": True},
    "ddp 1 MB": {"bucket_cap_mb": 1.0}}


def rotated(names: list[str], step: int) -> list[str]:
    k = step % len(names)
    return names[k:] + names[:k]


def worker_mlp(steps: int) -> dict[str, Any]:
    import chainrule as cr
    import chainrule.distributed as dist
    import numpy as np
    from chainrule.nn.parallel import DistributedDataParallel
    from mpi4py import MPI

    dist.init_process_group(backend="mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    comm = MPI.COMM_WORLD
    cr.set_num_threads(1)
    rng = np.random.default_rng(rank)
    x = cr.tensor(rng.standard_normal((256, 64)).astype(np.float32))
    y = cr.tensor(rng.integers(0, 10, 256))
    loss_fn = cr.nn.CrossEntropyLoss()

    def make(ddp_options: dict[str, Any] | None) -> tuple[Any, Any]:
        cr.manual_seed(0)
        model = cr.nn.Sequential(cr.nn.Linear(64, 1024), cr.nn.ReLU(), cr.nn.Linear(1024, 1024),
                                 cr.nn.ReLU(), cr.nn.Linear(1024, 10))
        net = model if ddp_options is None else DistributedDataParallel(model, **ddp_options)
        return net, cr.optim.Adam(net.parameters(), lr=1e-4)

    def step_of(net: Any, optimizer: Any) -> None:
        optimizer.zero_grad()
        loss_fn(net(x), y).backward()
        optimizer.step()

    # "plain" (2 processes): both train without DDP at once, what the machine gives two
    # processes that never talk: the baseline that isolates the cost of communicating.
    # "alone" (2 processes): rank 0 trains by itself while rank 1 sleeps.
    nets = {"plain": make(None)}
    if world > 1:
        nets["alone"] = make(None)
        nets.update((name, make(options)) for name, options in DDP_CONFIGS.items())
    times: dict[str, list[float]] = {name: [] for name in nets}
    for step in range(steps + 5):
        for name in rotated(list(nets), step):
            if name == "alone":
                comm.Barrier()
                if rank == 0:
                    start = time.perf_counter()
                    step_of(*nets[name])
                    elapsed = time.perf_counter() - start
                    comm.Ibarrier().Wait()
                else:
                    request = comm.Ibarrier()
                    while not request.Test():  # asleep, not spinning: rank 0 has the machine
                        time.sleep(0.0002)
                    elapsed = 0.0
            else:
                # From barrier to barrier: a step lasts until every process has finished it,
                # with DDP or without (otherwise the processes' own jitter would count only for
                # DDP, whose all-reduce waits for the slowest).
                comm.Barrier()
                start = time.perf_counter()
                step_of(*nets[name])
                comm.Barrier()
                elapsed = time.perf_counter() - start
            if step >= 5:
                times[name].append(elapsed)
    results: dict[str, Any] = {}
    for name, values in times.items():
        local = np.array([statistics.median(values)])
        comm.Allreduce(MPI.IN_PLACE, local, op=MPI.MAX)  # the slower process counts
        results[name] = float(local[0])
        if name in DDP_CONFIGS:
            results[name + " buckets"] = len(nets[name][0]._reducer.buckets)
    dist.destroy_process_group()
    return results


def worker_torch_mlp(steps: int) -> dict[str, Any]:
    """The peer: the same MLP and steps with PyTorch's DDP over its gloo backend (mpiexec only
    starts the processes; gloo meets its peers through the file BENCH_GLOO_FILE, so no port is
    chosen ahead of time)."""
    import datetime

    import torch
    import torch.distributed as tdist

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1")))
    tdist.init_process_group("gloo", init_method="file://" + os.environ["BENCH_GLOO_FILE"],
                             rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120))
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(rank)
    x = torch.randn(256, 64, generator=generator)
    y = torch.randint(0, 10, (256,), generator=generator)
    loss_fn = torch.nn.CrossEntropyLoss()

    def make(wrap: bool) -> tuple[Any, Any]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(),
                                    torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                    torch.nn.Linear(1024, 10))
        net = torch.nn.parallel.DistributedDataParallel(model) if wrap else model
        return net, torch.optim.Adam(net.parameters(), lr=1e-4)

    nets = {"plain": make(False)}
    if world > 1:
        nets["ddp 25 MB"] = make(True)
    times: dict[str, list[float]] = {name: [] for name in nets}
    for step in range(steps + 5):
        for name in rotated(list(nets), step):
            net, optimizer = nets[name]
            tdist.barrier()
            start = time.perf_counter()
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
            tdist.barrier()
            if step >= 5:
                times[name].append(time.perf_counter() - start)
    results: dict[str, Any] = {}
    for name, values in times.items():
        local = torch.tensor([statistics.median(values)], dtype=torch.float64)
        tdist.all_reduce(local, op=tdist.ReduceOp.MAX)
        results[name] = float(local[0])
    # The figures first, then leave together and at once: one run in a few here ended with
    # "terminate called without an active exception" (SIGABRT) in a process tearing gloo down
    # at exit (a std::thread still joinable when destroyed), after its figures were printed.
    # os._exit skips those destructors; the OS closes the sockets.
    if rank == 0:
        print(json.dumps(results), flush=True)
    tdist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def worker_all_reduce(steps: int) -> dict[str, Any]:
    import chainrule as cr
    import chainrule.distributed as dist

    dist.init_process_group(backend="mpi")  # first: it sets Open MPI's options before MPI starts
    from mpi4py import MPI

    t = cr.ones(25 * 1024 * 1024 // 4)  # 25 MiB of float32
    buffer = t.numpy()  # the same memory
    comm = MPI.COMM_WORLD
    calls = {"chainrule": lambda: dist.all_reduce(t),
             "chainrule async": lambda: dist.all_reduce(t, async_op=True).wait(),
             "mpi4py": lambda: comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM),
             "mpi4py Iallreduce": lambda: comm.Iallreduce(MPI.IN_PLACE, buffer, op=MPI.SUM).Wait()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for step in range(steps + 3):
        for name in rotated(list(calls), step):
            buffer.fill(1.0)  # the same values and cache state before every call
            comm.Barrier()
            start = time.perf_counter()
            calls[name]()
            elapsed = time.perf_counter() - start
            if step >= 3:
                times[name].append(elapsed)
    result: dict[str, Any] = {name: statistics.median(values) for name, values in times.items()}
    result["bytes"] = t.numel() * 4
    dist.destroy_process_group()
    return result


# ------------------------------------------------------------------ the driver
WAIT_IDLE_S = 0.0  # --wait-idle: how long each launch may wait for an idle machine


def idle_fraction(window: float = 2.0) -> float | None:
    """The share of all CPU time that was idle over `window` seconds (Linux), else None."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all

    try:
        idle0, total0 = read()
        time.sleep(window)
        idle1, total1 = read()
    except (OSError, IndexError, ValueError):
        return None
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_until_idle() -> None:
    """On a shared machine: waits (up to WAIT_IDLE_S) for a 2 s window with >= 90% of the CPUs
    idle, so that a launch starts when nobody else computes; says so when it gives up."""
    deadline = time.monotonic() + WAIT_IDLE_S
    while time.monotonic() < deadline:
        idle = idle_fraction()
        if idle is None or idle >= 0.9:
            return
    if WAIT_IDLE_S > 0:
        print(f"  (no idle window within {WAIT_IDLE_S:g} s; running at load "
              f"{os.getloadavg()[0]:.2f})", file=sys.stderr)


def launch(n: int, worker: str, steps: int, env: dict[str, str] | None = None,
           optional: bool = False) -> dict[str, Any] | None:
    """Runs a worker on n processes; its figures (rank 0's last JSON line). A failing optional
    worker (the PyTorch peer) is reported on stderr and gives None; a failing one of ours ends
    the bench."""
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("needs mpiexec and mpi4py: pip install \"chainrule[distributed]\"")
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             check=False).stdout
    flags = ["--allow-run-as-root"] if "Open MPI" in version and os.geteuid() == 0 else []
    if n > (os.cpu_count() or 1):
        flags.append("--oversubscribe")
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    command = [mpiexec, *flags, "-n", str(n), sys.executable, os.path.abspath(__file__),
               "--worker", worker, "--steps", str(steps)]
    wait_until_idle()
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200,
                             check=False)
    except subprocess.TimeoutExpired:
        if optional:
            print(f"  ({worker} on {n} processes: no result within 1200 s)", file=sys.stderr)
            return None
        raise
    figures = None
    for line in reversed(out.stdout.strip().splitlines()):
        if line.startswith("{"):
            figures = json.loads(line)
            break
    if out.returncode != 0 or figures is None:
        why = (out.stdout[-1500:] + out.stderr[-1500:]).strip()
        if not optional:
            sys.exit(why)
        if figures is None:
            print(f"  ({worker} on {n} processes failed with status {out.returncode}:\n{why})",
                  file=sys.stderr)
        else:  # it printed its figures and then failed in its teardown
            print(f"  ({worker} on {n} processes exited with status {out.returncode} after its "
                  f"figures; its last words: {why[-300:]!r})", file=sys.stderr)
    return figures


def torch_peer(n: int, steps: int) -> dict[str, Any] | None:
    """PyTorch's DDP over gloo, one retry on failure (a fresh rendezvous file each try)."""
    for _ in range(2):
        with tempfile.TemporaryDirectory(prefix="bench-gloo-") as folder:
            figures = launch(n, "torch_mlp", steps, optional=True,
                             env={"BENCH_GLOO_FILE": os.path.join(folder, "rendezvous"),
                                  "GLOO_SOCKET_IFNAME": "lo"})
        if figures is not None:
            return figures
    return None


def one_run(steps: int, with_torch: bool) -> dict[str, Any]:
    run: dict[str, Any] = {"one_process": launch(1, "mlp", steps),
                           "two_processes": launch(2, "mlp", steps),
                           "all_reduce": launch(2, "all_reduce", steps)}
    if with_torch:
        run["torch_one_process"] = torch_peer(1, steps)
        run["torch_two_processes"] = torch_peer(2, steps)
    return run


def figures_of(run: dict[str, Any]) -> dict[str, float]:
    """The ratios of one run, by name."""
    two, reduce = run["two_processes"], run["all_reduce"]
    alone = two["alone"]
    out = {"1 process (own job) ms": run["one_process"]["plain"] * 1e3,
           "alone ms": alone * 1e3, "2 plain ms": two["plain"] * 1e3,
           "2 plain / alone": two["plain"] / alone}
    for name in DDP_CONFIGS:
        out[f"{name} ms"] = two[name] * 1e3
        out[f"{name} samples/s x"] = 2 * alone / two[name]
        out[f"{name} step x"] = two[name] / alone
        out[f"{name} / 2 plain"] = two[name] / two["plain"]
        out[f"{name} step x own job"] = two[name] / run["one_process"]["plain"]
    for name in ("chainrule", "chainrule async", "mpi4py Iallreduce"):
        out[f"all_reduce {name} x"] = reduce["mpi4py"] / reduce[name]
    out["all_reduce mpi4py GiB/s"] = reduce["bytes"] / 2**30 / reduce["mpi4py"]
    t_one, t_two = run.get("torch_one_process"), run.get("torch_two_processes")
    if t_one and t_two:
        out["torch ddp samples/s x"] = 2 * t_one["plain"] / t_two["ddp 25 MB"]
        out["torch ddp step x"] = t_two["ddp 25 MB"] / t_one["plain"]
        out["chainrule / torch ddp step"] = two["ddp 25 MB"] / t_two["ddp 25 MB"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the summary is their median")
    parser.add_argument("--no-torch", action="store_true", help="leave out PyTorch's gloo peer")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each launch, wait up to S seconds for a 2 s window with "
                             ">= 90%% of the CPUs idle (shared machines)")
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

    global WAIT_IDLE_S
    WAIT_IDLE_S = args.wait_idle
    try:
        import torch  # noqa: F401  (the peer is optional)
        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
    print(f"{cpu_name()}, {os.cpu_count()} cores; chainrule kernels: {cr._core.active_isa()}; "
          f"one thread per process; medians of {args.steps} steps, {args.repeat} run(s); "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    runs, table = [], []
    for r in range(args.repeat):
        run = one_run(args.steps, with_torch)
        runs.append(run)
        table.append(figures_of(run))
        f = table[-1]
        print(f"run {r + 1}: alone {f['alone ms']:.2f} ms, DDP 25 MB {f['ddp 25 MB ms']:.2f} ms "
              f"({f['ddp 25 MB step x']:.2f}x), view {f['ddp 25 MB view ms']:.2f} ms "
              f"({f['ddp 25 MB view step x']:.2f}x), all_reduce {f['all_reduce chainrule x']:.2f}x "
              f"/ async {f['all_reduce chainrule async x']:.2f}x mpi4py; load "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    # Over the runs that have the figure (a failed PyTorch peer leaves its out of one run).
    median = {k: statistics.median(f[k] for f in table if k in f) for f in table for k in f}
    two_buckets = runs[0]["two_processes"]
    m = median
    print(f"\nwide MLP 64-1024-1024-10, batch 256 per process, Adam (medians of {len(table)} runs; "
          "each ratio is the median of the runs' own ratios)")
    print(f"  {'1 process alone':28s}{m['alone ms']:7.2f} ms/step  {256e3 / m['alone ms']:8.0f} "
          f"samples/s   (in its own mpiexec -n 1 job: {m['1 process (own job) ms']:.2f} ms)")
    print(f"  {'2 processes, no DDP':28s}{m['2 plain ms']:7.2f} ms/step  (each alone on its half: "
          f"the machine's share, {m['2 plain / alone']:.2f}x one process)")
    for name in DDP_CONFIGS:
        print(f"  {'2 processes, ' + name:28s}{m[name + ' ms']:7.2f} ms/step  "
              f"{512e3 / m[name + ' ms']:8.0f} samples/s = {m[name + ' samples/s x']:.2f}x "
              f"(target >= 1.7), step {m[name + ' step x']:.2f}x (target <= 1.15), "
              f"{m[name + ' / 2 plain']:.2f}x no DDP, step {m[name + ' step x own job']:.2f}x the "
              f"own job's; {two_buckets[name + ' buckets']} bucket(s)")
    if "torch ddp step x" in m:
        print(f"  PyTorch (gloo) DDP: {m['torch ddp samples/s x']:.2f}x samples/s, step "
              f"{m['torch ddp step x']:.2f}x its 1 process; chainrule's DDP step / PyTorch's "
              f"{m['chainrule / torch ddp step']:.2f}x")
    elif with_torch:
        print("  PyTorch (gloo) DDP: no figures (its runs failed; see above)")
    megabytes = runs[0]["all_reduce"]["bytes"] / 2**20
    print(f"\nall_reduce of {megabytes:.0f} MiB float32 on 2 processes (mpi4py Allreduce: "
          f"{m['all_reduce mpi4py GiB/s']:.2f} GiB/s)")
    for name in ("chainrule", "chainrule async", "mpi4py Iallreduce"):
        target = "" if name.startswith("mpi4py") else " (target >= 0.95)"
        print(f"  {name:18s} {m[f'all_reduce {name} x']:.2f}x mpi4py Allreduce's bandwidth"
              f"{target}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "figures": table, "medians": median}, f, indent=1)


if __name__ == "__main__":
    main()
