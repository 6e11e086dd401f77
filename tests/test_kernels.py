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
