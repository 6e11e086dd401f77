"""The examples: digits.py reaches >= 96% test accuracy and digits_cnn.py >= 98%; xor.py learns
XOR with SGD and Adam; char_rnn.py's loss falls far below chance and it prints samples; each is
imported as a module and run as a script, and says what to install when a package is missing."""
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
    sys.modules[spec.name] = module  # dataclasses in an example look their module up here
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
    digits = _load("digits")
    result = digits.train(show_progress=False, verbose=False)
    assert set(result) >= {"accuracy", "seconds_per_epoch"}
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["accuracy"] >= 0.96, result
    assert result["seconds_per_epoch"] > 0


def test_digits_is_reproducible_for_a_seed():
    pytest.importorskip("sklearn")
    digits = _load("digits")
    a = digits.train(epochs=2, show_progress=False, verbose=False)
    b = digits.train(epochs=2, show_progress=False, verbose=False)
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


def _run_example_without(blocked: list[str], script: str, *args: str):
    """Runs examples/<script> in a fresh interpreter where importing `blocked` fails, as on a
    machine where they are not installed."""
    code = ("import runpy, sys\n"
            f"for name in {blocked!r}: sys.modules[name] = None\n"
            f"sys.argv = [{script!r}, *{list(args)!r}]\n"
            f"runpy.run_path({str(EXAMPLES / script)!r}, run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)


def test_digits_without_scikit_learn_says_what_to_install_in_one_line():
    proc = _run_example_without(["sklearn"], "digits.py")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "scikit-learn" in proc.stderr and '.[examples]' in proc.stderr


def test_xor_logdir_without_tensorboardx_says_what_to_install_in_one_line(tmp_path):
    proc = _run_example_without(["tensorboardX"], "xor.py", "--logdir", str(tmp_path / "runs"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "tensorboardX" in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "runs").exists()  # it stopped before training


def test_digits_without_tqdm_prints_plain_epoch_lines():
    pytest.importorskip("sklearn")
    proc = _run_example_without(["tqdm"], "digits.py", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["epoch", "1"], ["epoch", "2"]]
    assert lines[-1].startswith("test accuracy")


def test_progress_falls_back_to_the_plain_iterable_without_tqdm(monkeypatch):
    from chainrule.utils.extras import progress
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert list(progress(range(4), desc="x")) == [0, 1, 2, 3]
    assert list(progress(range(2), enabled=False)) == [0, 1]


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


@pytest.mark.slow
def test_char_rnn_learns_its_text_with_a_gru():
    char_rnn = _load("char_rnn")
    chars = sorted(set(char_rnn.TEXT.read_text()))
    result = char_rnn.train(steps=150, sample_every=150, verbose=False, cell="gru")
    assert result["first_loss"] > 0.9 * math.log(len(chars))
    assert result["loss"] < 1.0, result  # a third of chance or less after 150 steps (0.47 here)


def test_char_rnn_script_runs():
    proc = subprocess.run([sys.executable, "examples/char_rnn.py", "--steps", "20", "--sample-every", "10"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "final loss" in proc.stdout and proc.stdout.count("step ") == 2
