"""The CNN and char-RNN examples: digits_cnn.py reaches >= 98% test accuracy; char_rnn.py's loss
falls far below chance and it prints samples; both also run as scripts."""
from __future__ import annotations

import importlib.util
import math
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
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _env():
    env = dict(os.environ)
    package_parent = str(Path(cr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def test_digits_cnn_reaches_98_percent_test_accuracy():
    pytest.importorskip("sklearn")
    result = _load("digits_cnn").train(show_progress=False, verbose=False)
    assert result["accuracy"] >= 0.98, result
    assert result["seconds_per_epoch"] > 0


@pytest.mark.slow
def test_char_rnn_learns_its_text_and_samples(capsys):
    char_rnn = _load("char_rnn")
    chars = sorted(set(char_rnn.TEXT.read_text()))
    result = char_rnn.train(steps=150, sample_every=75)
    assert result["first_loss"] > 0.9 * math.log(len(chars))  # starts near chance
    assert result["loss"] < 1.0, result  # a third of chance or less after 150 steps
    out = capsys.readouterr().out
    assert out.count("step ") == 2 and "'The " in out
    assert set(result["sample"]) <= set(chars) and len(result["sample"]) == 4 + 160


def test_char_rnn_script_runs():
    proc = subprocess.run([sys.executable, "examples/char_rnn.py", "--steps", "20", "--sample-every", "10"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "final loss" in proc.stdout and proc.stdout.count("step ") == 2
