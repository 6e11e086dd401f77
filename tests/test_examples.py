"""The examples: digits.py reaches >= 96% test accuracy; xor.py learns XOR with SGD and Adam,
imported as modules and run as a script."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import chainrule as cr

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env():
    """PYTHONPATH with the directory holding the imported chainrule package first."""
    env = dict(os.environ)
    package_parent = str(Path(cr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def test_digits_reaches_96_percent_test_accuracy():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    digits = _load("digits")
    result = digits.train(progress=False, verbose=False)
    assert set(result) >= {"accuracy", "seconds_per_epoch"}
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["accuracy"] >= 0.96, result
    assert result["seconds_per_epoch"] > 0


def test_digits_is_reproducible_for_a_seed():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    digits = _load("digits")
    a = digits.train(epochs=2, progress=False, verbose=False)
    b = digits.train(epochs=2, progress=False, verbose=False)
    assert a["accuracy"] == b["accuracy"]


def test_xor_with_adam_defaults_reaches_full_accuracy():
    xor = _load("xor")
    result = xor.train(optimizer_name="adam", verbose=False)
    assert result["accuracy"] == 1.0
    assert result["predicted"].numpy().ravel().tolist() == [0.0, 1.0, 1.0, 0.0]
    assert result["cost"] < 0.1


def test_xor_rejects_unknown_optimizer():
    xor = _load("xor")
    with pytest.raises(ValueError):
        xor.train(optimizer_name="rmsprop", steps=1, verbose=False)


def test_xor_script_prints_full_accuracy():
    proc = subprocess.run([sys.executable, "examples/xor.py"], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Accuracy: 1.0" in proc.stdout, proc.stdout[-2000:]


def test_xor_script_with_adam_option():
    proc = subprocess.run([sys.executable, "examples/xor.py", "--optimizer", "adam",
                           "--steps", "2001"], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Accuracy: 1.0" in proc.stdout, proc.stdout[-2000:]
