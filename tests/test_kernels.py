"""The C++ kernels under every SIMD variant the CPU runs: GEMM against a float64 reference
over an (m, n, k) grid covering every edge remainder, transposed, strided and batched
operands, and elementwise and reduction kernels on odd sizes and misaligned views.

The variant is fixed at import, so each runs in its own interpreter (CHAINRULE_ISA)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chainrule import _core

ISAS = [isa for isa in ("generic", "avx2", "avx512") if _core.cpu_supports(isa)]


@pytest.mark.parametrize("isa", ISAS)
def test_kernels_match_numpy_under_isa(isa):
    env = dict(os.environ, CHAINRULE_ISA=isa)
    script = Path(__file__).with_name("kernel_check.py")
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert f"isa={isa}" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


# Caches far smaller than any CPU's: kc, MC and NC shrink to a few tiles, so the GEMM's loops over
# blocks of k, of rows and of columns all run several times even on the small shapes there.
TINY_CACHES = "l1d=4K,l2=32K,l3=256K"


@pytest.mark.parametrize("isa", ISAS)
def test_kernels_match_numpy_under_isa_with_tiny_caches(isa):
    env = dict(os.environ, CHAINRULE_ISA=isa, CHAINRULE_CACHE_SIZES=TINY_CACHES)
    script = Path(__file__).with_name("kernel_check.py")
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert f"isa={isa} caches=(4096, 32768, 262144)" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def run_with_cache_sizes(spec, code):
    env = dict(os.environ, CHAINRULE_CACHE_SIZES=spec)
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)


def test_cache_sizes_env_is_honoured_and_shown():
    code = ("import chainrule as cr; from chainrule import _core; "
            "print(_core.cache_sizes(), _core.detected_cache_sizes()); cr.show_config()")
    result = run_with_cache_sizes("l1d=20K, l2=300K ,l3=5M", code)  # spaces around entries are not allowed
    assert "RuntimeWarning" in result.stderr and "' l2=300K '" in result.stderr, result.stderr
    result = run_with_cache_sizes("l1d=20K,l2=300KiB,l3=5M", code)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{(20 << 10, 300 << 10, 5 << 20)} "), first
    assert "L1d 20 KiB, L2 300 KiB, L3 5 MiB (GEMM blocking, from CHAINRULE_CACHE_SIZES" in result.stdout
    # only L2 named: L1d and L3 stay the CPU's
    result = run_with_cache_sizes("l2=1M", "from chainrule import _core; print(_core.cache_sizes() == "
                                  "(_core.detected_cache_sizes()[0], 1 << 20, _core.detected_cache_sizes()[2]))")
    assert result.stdout.strip() == "True", result.stdout + result.stderr


@pytest.mark.parametrize("spec", ["l2=12Q", "l4=1M", "l2", "l2=", "l2=0", "l2=512", "l1d=8M,l2=1M", "l3=2000G",
                                  "L2=1M", "l2=-1M"])
def test_bad_cache_sizes_raise_and_the_import_warns(spec):
    with pytest.raises(ValueError, match="CHAINRULE_CACHE_SIZES: '"):
        _core.parse_cache_sizes(spec)
    code = "from chainrule import _core; print(_core.cache_sizes() == _core.detected_cache_sizes())"
    result = run_with_cache_sizes(spec, code)
    assert result.stdout.strip() == "True", result.stdout + result.stderr  # the GEMM keeps the CPU's sizes
    assert "RuntimeWarning: CHAINRULE_CACHE_SIZES" in result.stderr and "detected cache sizes" in result.stderr


def test_parse_cache_sizes_units():
    l1, l2, l3 = _core.detected_cache_sizes()
    assert _core.parse_cache_sizes("") == (l1, l2, l3)
    assert _core.parse_cache_sizes("l1d=32K,l2=512K,l3=32M") == (32 << 10, 512 << 10, 32 << 20)
    assert _core.parse_cache_sizes("l1=32768,l2=1MiB,l3=1G") == (32 << 10, 1 << 20, 1 << 30)
    assert _core.parse_cache_sizes("l1d=48kb,l2=2m,l3=1g") == (48 << 10, 2 << 20, 1 << 30)


def test_fma_peak_is_measured_per_isa():
    peaks = {isa: _core.fma_peak_gflops(isa, 0.02) for isa in ISAS}
    assert all(peak > 0.5 for peak in peaks.values()), peaks  # GFLOP/s of one core: a 2000s CPU does more
    with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
        _core.fma_peak_gflops("sse9")


def test_isa_override_falls_back_to_supported():
    env = dict(os.environ, CHAINRULE_ISA="no-such-isa")
    code = "from chainrule import _core; print(_core.active_isa())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout
    assert out.strip() == ISAS[-1]  # an unknown name keeps the best the CPU has


def test_threads_setting_and_results_agree():
    import numpy as np

    import chainrule as cr

    a = np.random.default_rng(1).standard_normal((300, 400)).astype(np.float32)
    before = cr.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cr.set_num_threads(threads)
            assert cr.get_num_threads() == threads
            t = cr.tensor(a)
            results.append(((t @ t.T).numpy(), t.sum(0).numpy(), (t * 2 + 1).sigmoid().numpy()))
        for one, two in zip(*results):
            np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-4)
    finally:
        cr.set_num_threads(before)
    with pytest.raises(ValueError):
        cr.set_num_threads(0)


def test_cache_sizes_come_from_the_cpu():
    l1, l2, l3 = _core.cache_sizes()
    assert 4 << 10 <= l1 <= l2 <= l3  # the GEMM's blocks are sized from these
    sysfs = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sysfs.glob("index*"):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction" or level > 3 or not size.endswith("K"):
            continue
        assert (l1, l2, l3)[level - 1] == int(size[:-1]) << 10, (index, size)
