"""Small PyTorch scripts (tests/porting_scripts/, written for PyTorch: `import torch`) run
unchanged but for the import lines, which become `import chainrule as torch` and the like, as
API.md promises. Each script leaves a `results` dict; with PyTorch installed the same script
runs under it too and the two agree to float32 round-off; without it, each result is checked
against what the problem itself says (a fit near the least-squares answer, an accuracy).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent / "porting_scripts"


def ported(source: str) -> str:
    """The one edit a port needs: the imports name chainrule instead of torch."""
    source = re.sub(r"^import torch$", "import chainrule as torch", source, flags=re.MULTILINE)
    return re.sub(r"^(import|from) torch\b", r"\1 chainrule", source, flags=re.MULTILINE)


def run(name: str, framework: str) -> dict:
    source = (SCRIPTS / name).read_text()
    if framework == "chainrule":
        source = ported(source)
    namespace: dict = {"__name__": "__porting_script__"}
    exec(compile(source, str(SCRIPTS / name), "exec"), namespace)  # noqa: S102  (our own scripts)
    return namespace["results"]


def test_the_port_changes_only_import_lines():
    for path in sorted(SCRIPTS.glob("*.py")):
        before, after = path.read_text().splitlines(), ported(path.read_text()).splitlines()
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert changed and all(a.startswith(("import torch", "from torch")) for a, _ in changed), path.name
        assert not any("torch" in b.replace("as torch", "") for _, b in changed), changed


def _close(ours, theirs, rtol, atol, where=""):
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        for key in ours:
            _close(ours[key], theirs[key], rtol, atol, f"{where}.{key}")
    elif isinstance(ours, str) or (isinstance(ours, list) and ours and isinstance(ours[0], str)):
        assert ours == theirs, where
    else:
        np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                                   rtol=rtol, atol=atol, err_msg=where)


# ---------------------------------------------------------------- the scripts
def test_polynomial_fit(torch):
    ours = run("polynomial_fit.py", "chainrule")
    _close(ours, run("polynomial_fit.py", "torch"), rtol=1e-5, atol=1e-6)


def test_polynomial_fit_approaches_least_squares():
    ours = run("polynomial_fit.py", "chainrule")
    x = np.linspace(-np.pi, np.pi, 200)
    basis = np.stack([np.ones_like(x), x, x ** 2, x ** 3], axis=1)
    best, *_ = np.linalg.lstsq(basis, np.sin(x), rcond=None)
    best_loss = np.mean((basis @ best - np.sin(x)) ** 2)
    assert ours["losses"] == sorted(ours["losses"], reverse=True)  # gradient descent descends
    assert ours["final_loss"] < 0.05 and ours["final_loss"] >= best_loss * 0.999
    assert ours["coefficients"][1] > 0.5 and ours["coefficients"][3] < 0  # sin x ~ x - x^3/6
    assert ours["log"][-1].startswith("step 1499: loss 0.0") and ours["fitted"].startswith("y = ")


def test_regression_mlp(torch):
    _close(run("regression_mlp.py", "chainrule"), run("regression_mlp.py", "torch"), rtol=1e-4, atol=1e-6)


def test_regression_mlp_learns():
    ours = run("regression_mlp.py", "chainrule")
    assert ours["history"][-1] < 0.3 * ours["history"][0]
    assert ours["mse"] < 0.1 * ours["target_variance"]
    np.testing.assert_allclose(ours["lr"], [3e-3 * 0.9 ** 8])


def test_spiral_classifier(torch):
    ours, theirs = run("spiral_classifier.py", "chainrule"), run("spiral_classifier.py", "torch")
    assert ours["keys"] == theirs["keys"] and ours["parameters"] == theirs["parameters"] == 6
    _close(ours["losses"], theirs["losses"], rtol=1e-3, atol=1e-5, where="losses")
    _close(ours["norms"], theirs["norms"], rtol=1e-3, atol=1e-5, where="norms")
    assert abs(ours["accuracy"] - theirs["accuracy"]) <= 2 / 300  # a borderline point or two


def test_spiral_classifier_learns():
    ours = run("spiral_classifier.py", "chainrule")
    assert ours["accuracy"] > 0.9 and ours["losses"][-1] < 0.3 * ours["losses"][0]
    assert ours["keys"][:2] == ["hidden.0.weight", "hidden.0.bias"] and "heads.logits.bias" in ours["keys"]


def test_adagrad_plateau(torch):
    _close(run("adagrad_plateau.py", "chainrule"), run("adagrad_plateau.py", "torch"), rtol=1e-5, atol=1e-6)


def test_adagrad_plateau_recovers_the_line():
    ours = run("adagrad_plateau.py", "chainrule")
    np.testing.assert_allclose(ours["parameters"], ours["true"], atol=0.1)
    assert ours["rates"][4] == pytest.approx(0.5) and ours["rates"][0] == pytest.approx(0.2)
    assert ours["valid_losses"][-1] < 0.2 * ours["valid_losses"][0]
