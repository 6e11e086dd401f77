"""The plain-Python reference engine (chainrule/autograd/reference.py): chosen by
CHAINRULE_ENGINE=python, it keeps every engine behaviour the C++ engine has, and gives the same
gradients bit for bit (op by op: tests/test_ops_table.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import chainrule as cr
import numpy as np
import pytest
from chainrule.autograd import engine, reference

REPO = Path(__file__).resolve().parents[1]
PACKAGE_PARENT = str(Path(cr.__file__).resolve().parents[1])


def _run(code_or_args: list[str], engine_name: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CHAINRULE_ENGINE=engine_name)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, *code_or_args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_the_environment_chooses_the_engine():
    code = ("import chainrule as cr; from chainrule.autograd import engine, reference; "
            "assert engine.run is reference.run_backward, engine.name; print(engine.name)")
    run = _run(["-c", code], "python")
    assert run.returncode == 0 and run.stdout.strip() == "python", run.stdout + run.stderr
    run = _run(["-c", "import chainrule"], "fortran")
    assert run.returncode != 0 and "CHAINRULE_ENGINE" in run.stderr


def test_the_default_is_the_cpp_engine():
    assert engine.name == "cpp" or os.environ.get("CHAINRULE_ENGINE") == "python"


def test_lecture_example_under_the_reference_engine():
    """f = w x + b: df/dw = x, df/dx = w, df/db = 1; and sigmoid's y (1 - y)."""
    previous = engine.set_engine("python")
    try:
        w, x, b = (cr.tensor(v, requires_grad=True) for v in (-2.0, 5.0, 3.0))
        f = w * x + b
        f.backward()
        assert (w.grad.item(), x.grad.item(), b.grad.item()) == (5.0, -2.0, 1.0)
        z = cr.tensor([0.5, -1.0], dtype=cr.float64, requires_grad=True)
        y = z.sigmoid()
        (g,) = cr.autograd.grad(y.sum(), z)
        s = 1 / (1 + np.exp(-np.array([0.5, -1.0])))
        np.testing.assert_allclose(g.numpy(), s * (1 - s), rtol=1e-15)
        assert w.grad.item() == 5.0  # autograd.grad leaves .grad alone
    finally:
        engine.set_engine(previous)


def test_set_engine_rejects_unknown_names():
    with pytest.raises(ValueError, match="set_engine"):
        engine.set_engine("fortran")


def test_reference_engine_is_one_readable_file():
    """micrograd's engine is the length to aim for: the walk itself stays short."""
    lines = Path(reference.__file__).read_text().splitlines()
    code = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    assert len(code) < 160, len(code)


def test_autograd_suite_passes_under_the_reference_engine():
    """Hooks, retain_grad, retain_graph and freed graphs, in-place version checks, 10,000-op
    chains, autograd.grad, threads: tests/test_autograd.py, run with CHAINRULE_ENGINE=python."""
    run = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_autograd.py"], "python", timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
