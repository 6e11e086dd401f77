"""A wheel that installs and works elsewhere: `pip wheel .` builds it from this checkout, a fresh
virtual environment installs it (with numpy from the index), and a smoke test runs from a
directory outside the repository, so only the installed package can be imported. Slow (a full
C++ build): `python -m pytest -m slow tests/test_wheel.py`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SMOKE = textwrap.dedent("""
    import pathlib, sys
    import chainrule as cr

    package = pathlib.Path(cr.__file__).resolve().parent
    assert "site-packages" in package.parts, package           # the installed copy, not a tree
    assert (package / "py.typed").is_file() and (package / "_core.pyi").is_file()

    a = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = cr.ones(2, 2)
    assert (a @ b).tolist() == [[3.0, 3.0], [7.0, 7.0]]
    assert (a + 1).sum().item() == 14.0
    assert cr.arange(5).dtype == cr.int64 and (cr.arange(5) * 0.5).dtype == cr.float32

    w = cr.tensor(-2.0, requires_grad=True)
    x = cr.tensor(5.0, requires_grad=True)
    bias = cr.tensor(3.0, requires_grad=True)
    f = w * x + bias
    f.backward()
    assert (w.grad.item(), x.grad.item(), bias.grad.item()) == (5.0, -2.0, 1.0)

    model = cr.nn.Sequential(cr.nn.Linear(2, 4), cr.nn.Sigmoid(), cr.nn.Linear(4, 1))
    loss = cr.nn.MSELoss()(model(a), cr.zeros(2, 1))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())

    cr.show_config()
    print("smoke test passed")
""")


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: int = 900) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert run.returncode == 0, (f"{' '.join(command)} failed ({run.returncode}):\n"
                                 f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    return run


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    # A build directory of its own, so the wheel never reuses the checkout's build outputs.
    _run([sys.executable, "-m", "pip", "wheel", str(REPO), "-w", str(dist), "--no-deps",
          "-C", f"build-dir={tmp_path / 'build'}"], cwd=tmp_path)
    wheels = list(dist.glob("chainrule-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "chainrule/py.typed" in names and "chainrule/_core.pyi" in names
    assert any(n.startswith("chainrule/_core.") and n.endswith(".so") for n in names), names
    # The Python build installs no C++ library, headers or CMake files into the wheel.
    assert not [n for n in names if n.endswith((".a", ".h", ".cmake"))], names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheels[0]), "numpy"],
         cwd=tmp_path)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "smoke.py").write_text(SMOKE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run = _run([str(python), "smoke.py"], cwd=outside, env=env, timeout=120)
    assert "smoke test passed" in run.stdout
    assert re.search(r"^chainrule \d+\.\d+", run.stdout, re.MULTILINE), run.stdout
    assert "SIMD kernels" in run.stdout
