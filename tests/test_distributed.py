"""cr.distributed, DistributedDataParallel and DistributedSampler.

The collectives need several processes, so those tests launch `mpiexec -n N` on the scripts
in tests/distributed_scripts/ (each checks its results against NumPy or a one-process run and
raises, which aborts the job, on any difference) and look at the exit status and output. They
skip, with the reason, where mpi4py or mpiexec is missing. The rest runs in this process
without MPI: errors before init_process_group, and the sampler."""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.distributed as dist

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "distributed_scripts"


@functools.lru_cache(maxsize=None)
def _open_mpi(mpiexec: str) -> bool:
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=60)
    return "Open MPI" in version.stdout + version.stderr or "OpenRTE" in version.stdout


def _launcher(n: int = 2) -> tuple[str, ...]:
    """`mpiexec -n n` and, for Open MPI, the flags a root user needs and, with more processes
    than cores, --oversubscribe (which makes waiting processes yield their core: collectives
    then take milliseconds on a busy machine instead of microseconds, so only when needed)."""
    mpiexec = shutil.which("mpiexec")
    if importlib.util.find_spec("mpi4py") is None or mpiexec is None:
        return ()
    flags: tuple[str, ...] = ()
    if _open_mpi(mpiexec):
        flags = ("--allow-run-as-root",) + (("--oversubscribe",) if n > (os.cpu_count() or 1) else ())
    return (mpiexec, *flags, "-n", str(n))


def mpirun(script: str, *args: str, n: int = 2, timeout: float = 120) -> tuple[int, str, float]:
    """Runs tests/distributed_scripts/<script> on n processes; (exit status, output, seconds).
    A job still running after `timeout` is killed with its whole process group and fails."""
    launcher = _launcher(n)
    if not launcher:
        pytest.skip("needs mpi4py and mpiexec: pip install \"chainrule[distributed]\"")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    package_parent = str(Path(cr.__file__).resolve().parents[1])  # this chainrule, installed or not
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    command = [*launcher, sys.executable, str(SCRIPTS / script), *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{script} {args} hung for {timeout} s:\n"
                    + output.decode(errors="replace")[-3000:])
    return process.returncode, output.decode(errors="replace"), time.perf_counter() - start


# ------------------------------------------------------------------ under mpiexec
@pytest.mark.parametrize("n", [2, 3])
def test_every_collective_matches_numpy(n):
    status, output, _ = mpirun("collectives.py", n=n)
    assert status == 0, output[-3000:]
    assert f"checks passed on {n} processes" in output


@pytest.mark.parametrize("n", [2, 3])
def test_ddp_matches_one_process_on_the_whole_batch(n):
    """K Adam steps: n processes on 1/n of every batch == 1 process on all of it, with one
    bucket or several, with no_sync accumulation; plus overlap, state_dict and errors."""
    status, output, _ = mpirun("ddp.py", n=n)
    assert status == 0, output[-3000:]
    assert "ddp: 1 bucket(s), 1 micro-batch(es)" in output and "2 bucket(s), 2 micro" in output
    assert "1 in place" in output


@pytest.mark.parametrize("mode, says", [
    ("raise", "uncaught ValueError; aborting the job"),
    ("kill", "signal 9"),
    ("exit", "all_reduce did not finish within 2 s"),
])
def test_a_failing_process_ends_the_whole_job_within_seconds(mode, says):
    status, output, seconds = mpirun("faults.py", mode, timeout=60)
    assert status != 0, output[-3000:]
    assert says in output, output[-3000:]
    assert "was not stopped" not in output
    assert seconds < 30, seconds  # a couple of seconds plus start-up on a busy machine


@pytest.mark.slow
def test_resumed_run_after_a_killed_one_reaches_the_same_parameters(tmp_path):
    pytest.importorskip("sklearn")
    checkpoint, full, resumed = (str(tmp_path / f) for f in ("ckpt.safetensors", "full.st",
                                                            "resumed.st"))
    status, output, _ = mpirun("digits_resume.py", "full", str(tmp_path / "other.st"), "3", full)
    assert status == 0, output[-3000:]
    status, output, seconds = mpirun("digits_resume.py", "killed", checkpoint, "3", "unused")
    assert status != 0 and "signal 9" in output, output[-3000:]
    assert int(cr.load(checkpoint)["epoch"].item()) == 2
    status, output, _ = mpirun("digits_resume.py", "resume", checkpoint, "3", resumed)
    assert status == 0, output[-3000:]
    a, b = cr.load(full), cr.load(resumed)
    assert list(a) == list(b)
    for name in a:  # bit for bit: the same steps on the same data in the same order
        assert np.array_equal(a[name].numpy(), b[name].numpy()), name


@pytest.mark.slow
def test_digits_ddp_example_from_the_readme_line(tmp_path):
    pytest.importorskip("sklearn")
    launcher = _launcher()
    if not launcher:
        pytest.skip("needs mpi4py and mpiexec")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(cr.__file__).resolve().parents[1])
    proc = subprocess.run([*launcher, sys.executable, str(REPO / "examples" / "digits_ddp.py"),
                           "--checkpoint", str(tmp_path / "digits.safetensors")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    accuracy = float(proc.stdout.strip().splitlines()[-1].split()[-1])
    assert accuracy >= 0.96, proc.stdout[-2000:]
    assert proc.stdout.count("epoch ") == 20  # rank 0 alone prints


# ------------------------------------------------------------------ in this process, no MPI
def test_calls_before_init_process_group_raise_value_error():
    assert isinstance(dist.is_available(), bool)
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(cr.ones(2)), lambda: dist.broadcast(cr.ones(2), 0),
                 lambda: cr.nn.parallel.DistributedDataParallel(cr.nn.Linear(2, 2)),
                 lambda: cr.utils.data.DistributedSampler(list(range(4)))):
        with pytest.raises(ValueError, match="init_process_group"):
            call()


def test_init_process_group_rejects_other_backends_before_starting_mpi():
    with pytest.raises(ValueError, match="backend 'gloo'"):
        dist.init_process_group(backend="gloo")
    assert not dist.is_initialized()


SHARES = [(10, 2, False), (11, 3, False), (11, 3, True), (2, 4, False), (7, 1, True)]


@pytest.mark.parametrize("n, replicas, drop_last", SHARES)
def test_distributed_sampler_shares_without_shuffle(n, replicas, drop_last):
    """Every replicas-th index from `rank`, over the order padded by its own start (or cut)."""
    per_process = n // replicas if drop_last else -(-n // replicas)
    order = np.resize(np.arange(n), per_process * replicas)
    for rank in range(replicas):
        ours = cr.utils.data.DistributedSampler(list(range(n)), replicas, rank, shuffle=False,
                                                drop_last=drop_last)
        assert list(ours) == order[rank::replicas].tolist() and len(ours) == per_process


@pytest.mark.parametrize("n, replicas, drop_last", SHARES)
def test_distributed_sampler_matches_torch_without_shuffle(n, replicas, drop_last, torch):
    for rank in range(replicas):
        ours = cr.utils.data.DistributedSampler(list(range(n)), replicas, rank, shuffle=False,
                                                drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(list(range(n)), replicas, rank,
                                                     shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_shuffles_alike_everywhere_and_per_epoch():
    data = list(range(23))
    samplers = [cr.utils.data.DistributedSampler(data, 3, r, seed=5) for r in range(3)]
    shares = [list(s) for s in samplers]
    everything = sum(shares, [])
    assert all(len(s) == 8 for s in shares) and len(everything) == 24  # padded by one
    assert set(everything) == set(data)  # the shares cover the dataset
    assert shares == [list(s) for s in samplers]  # the same order again within an epoch
    assert shares[0] != list(range(0, 23, 3))  # shuffled
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] != shares
    # The sampler draws from its own generator: chainrule's sequence is untouched.
    cr.manual_seed(0)
    expected = cr.rand(3)
    cr.manual_seed(0)
    list(samplers[0])
    assert np.array_equal(cr.rand(3).numpy(), expected.numpy())


def test_dataloader_takes_a_sampler():
    ds = cr.utils.data.TensorDataset(cr.arange(10))
    sampler = cr.utils.data.DistributedSampler(ds, num_replicas=2, rank=1, shuffle=False)
    loader = cr.utils.data.DataLoader(ds, batch_size=2, sampler=sampler)
    assert [b[0].tolist() for b in loader] == [[1, 3], [5, 7], [9]] and len(loader) == 3
    with pytest.raises(ValueError, match="mutually exclusive"):
        cr.utils.data.DataLoader(ds, sampler=sampler, shuffle=True)
    with pytest.raises(ValueError, match="invalid rank"):
        cr.utils.data.DistributedSampler(ds, num_replicas=2, rank=2)


def test_digits_ddp_without_mpi4py_says_what_to_install_in_one_line():
    code = ("import runpy, sys\n"
            "sys.modules['mpi4py'] = None\n"
            "sys.argv = ['digits_ddp.py']\n"
            f"runpy.run_path({str(REPO / 'examples' / 'digits_ddp.py')!r}, run_name='__main__')\n")
    env = dict(os.environ, PYTHONPATH=str(Path(cr.__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "mpi4py" in proc.stderr and ".[distributed]" in proc.stderr
