"""The documentation site builds with `mkdocs build --strict` (any warning fails it: a broken
link, a page missing from the nav, a docstring or reference mkdocstrings cannot resolve), and
the API reference is generated from the chainrule under test."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import chainrule as cr

REPO = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python", "material"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.skip(f"{module} is not installed (pip install '.[docs]')")
    env = dict(os.environ)
    package_parent = str(Path(cr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["NO_MKDOCS_2_WARNING"] = "1"
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr

    # The reference pages hold the rendered docstrings, with their doctests as code blocks.
    reference = (site / "reference" / "chainrule" / "index.html").read_text()
    assert 'id="chainrule.matmul"' in reference
    assert "Matrix product" in reference
    assert "&gt;&gt;&gt; </span>" in reference   # a pycon prompt, not a block quote
    assert 'id="chainrule.nn.Linear"' in (site / "reference" / "nn" / "index.html").read_text()
    assert 'id="chainrule.optim.SGD"' in (site / "reference" / "optim" / "index.html").read_text()
    guide = (site / "autograd" / "index.html").read_text()
    assert "tensor(5.0000) tensor(-2.0000) tensor(1.0000)" in guide


def test_autograd_guide_shows_what_chainrule_prints():
    """The outputs quoted in docs/autograd.md are what chainrule prints today."""
    text = (REPO / "docs" / "autograd.md").read_text()
    w = cr.tensor(-2.0, requires_grad=True)
    x = cr.tensor(5.0, requires_grad=True)
    b = cr.tensor(3.0, requires_grad=True)
    g = w * x
    f = g + b
    forward = f"{g!s} {f!s}"  # what print(g, f) shows (format() of a 0-d tensor is its number)
    f.backward()
    gradients = f"{w.grad!s} {x.grad!s} {b.grad!s}"
    assert (w.grad.item(), x.grad.item(), b.grad.item()) == (5.0, -2.0, 1.0)
    assert forward in text
    assert gradients in text

    z = cr.tensor([-2.0, 0.0, 2.0], requires_grad=True)
    s = cr.sigmoid(z)
    s.sum().backward()
    assert str(s) in text
    assert str(z.grad) in text
    assert str(s * (1 - s)) in text

    z = cr.tensor([-2.0, 0.0, 2.0], dtype=cr.float64, requires_grad=True)
    s = cr.sigmoid(z)
    (d1,) = cr.autograd.grad(s.sum(), z, create_graph=True)
    (d2,) = cr.autograd.grad(d1.sum(), z)
    assert str(d2) in text  # the second derivative, from create_graph
    assert str(s * (1 - s) * (1 - 2 * s)) in text


def test_autograd_guide_quotes_the_code_as_it_is():
    """The code blocks docs/autograd.md quotes from the reference engine and the op table are
    in those files, line for line (the first line of a quoted function is enough to find it)."""
    text = (REPO / "docs" / "autograd.md").read_text()
    sources = "\n".join((REPO / "python" / "chainrule" / path).read_text()
                        for path in ("autograd/reference.py", "ops/elementwise.py"))
    blocks = text.split("```python\n")[1:]
    quoted = [b.split("```")[0] for b in blocks if not b.lstrip().startswith(("import", "z =", "w ="))]
    assert len(quoted) >= 5
    for block in quoted:
        for line in block.rstrip("\n").splitlines():
            assert line in sources, f"docs/autograd.md quotes a line the code no longer has: {line!r}"
