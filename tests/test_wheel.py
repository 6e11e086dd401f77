"""The wheel a user on another machine installs: tools/check_wheel.sh builds it from this
checkout, repairs it with auditwheel (libgomp bundled, a manylinux tag), installs it into a
fresh virtual environment and runs tools/wheel_smoke.py from a folder outside the repository,
so only the installed package can be imported. CI runs the script itself; this test is the
same check for a developer. Slow (a wheel build, two virtualenvs):
`python -m pytest -m slow tests/test_wheel.py`."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_repaired_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("auditwheel repairs Linux wheels")
    if shutil.which("bash") is None:
        pytest.skip("tools/check_wheel.sh needs bash")
    if os.environ.get("CI") == "true":
        pytest.skip(".ci/run runs tools/check_wheel.sh itself, right after the tests")
    wheelhouse = tmp_path / "wheelhouse"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHON"] = sys.executable
    run = subprocess.run(["bash", str(REPO / "tools" / "check_wheel.sh"), str(wheelhouse)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
                         check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "smoke test passed" in run.stdout
    assert re.search(r"^chainrule \d+\.\d+", run.stdout, re.MULTILINE), run.stdout
    assert "SIMD kernels" in run.stdout and "bundled OpenMP runtime: libgomp" in run.stdout

    [wheel] = wheelhouse.glob("chainrule-*.whl")
    assert re.search(r"-manylinux_2_\d+_x86_64\.whl$", wheel.name), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "chainrule/py.typed" in names and "chainrule/_core.pyi" in names
    assert any(n.startswith("chainrule/_core.") and n.endswith(".so") for n in names), names
    assert any(n.startswith("chainrule.libs/libgomp") for n in names), names
    # The Python build installs no C++ library, headers or CMake files into the wheel.
    assert not [n for n in names if n.endswith((".a", ".h", ".cmake"))], names
