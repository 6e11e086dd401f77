"""The suite must run, skipping what it cannot check, wherever `pip install ".[test]"` alone was
run: no module-level import of a package the test extra does not bring (PyTorch above all), and
no module-level `pytest.importorskip`, which would skip a whole file's NumPy-oracle tests too."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# What a test module may import at its top: the standard library, the test extra's core, the
# package under test and the suite's own helpers (optional.py holds the optional peers).
ALLOWED = set(sys.stdlib_module_names) | {"numpy", "pytest", "hypothesis", "chainrule",
                                           "conftest", "optional", "kernel_check", "test_gradients"}
# Files whose every test is a comparison with one peer: skipping the whole file loses nothing.
WHOLE_FILE_SKIP = {"test_parity_torch.py": "torch"}


def _top_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _module_level_importorskips(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in tree.body:
        call = getattr(node, "value", None)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                and call.func.attr == "importorskip" and call.args \
                and isinstance(call.args[0], ast.Constant):
            found.append((node.lineno, str(call.args[0].value).split(".")[0]))
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_no_optional_package_at_module_level(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [f"line {line}: import {name}" for line, name in _top_level_imports(tree)
           if name not in ALLOWED]
    bad += [f"line {line}: pytest.importorskip({name!r}) at module level"
            for line, name in _module_level_importorskips(tree)
            if WHOLE_FILE_SKIP.get(path.name) != name]
    assert not bad, (f"{path.name} needs an optional package to be collected; import it inside "
                     f"the tests (pytest.importorskip) or from tests/optional.py: {bad}")


def test_the_check_catches_both_forms():
    # the rule above must be able to fail: both spellings of the mistake are found
    tree = ast.parse("import torch\nimport numpy as np\nsk = pytest.importorskip('sklearn')\n")
    assert [n for _, n in _top_level_imports(tree) if n not in ALLOWED] == ["torch"]
    assert _module_level_importorskips(tree) == [(3, "sklearn")]
