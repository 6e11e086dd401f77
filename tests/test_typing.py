"""The typed API: py.typed and the stub of chainrule._core ship beside the package, the stub
matches the compiled module (regenerated with pybind11-stubgen), `__all__` lists the package's
public names, and `mypy --strict` accepts the examples."""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import chainrule as cr

REPO = Path(__file__).resolve().parents[1]
COMMITTED_STUB = REPO / "python" / "chainrule" / "_core.pyi"
PACKAGE_DIR = Path(cr.__file__).resolve().parent


def _env() -> dict[str, str]:
    """PYTHONPATH with the directory holding the imported chainrule package first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_DIR.parent)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# --- comparing stubs by their names and parameter lists -----------------------------------

def _parameters(function: ast.FunctionDef) -> tuple:
    """(kind, name, default) for each parameter; annotations and docstrings are ignored."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    result = [("positional-only" if i < len(args.posonlyargs) else "positional", a.arg,
               None if d is None else ast.unparse(d))
              for i, (a, d) in enumerate(zip(positional, defaults))]
    if args.vararg:
        result.append(("*args", args.vararg.arg, None))
    result += [("keyword-only", a.arg, None if d is None else ast.unparse(d))
               for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        result.append(("**kwargs", args.kwarg.arg, None))
    return tuple(result)


def _decorators(function: ast.FunctionDef) -> tuple:
    return tuple(sorted(ast.unparse(d) for d in function.decorator_list))


def _outline(body: list[ast.stmt]) -> dict[str, object]:
    """name -> what a caller relies on: every overload's parameters for functions, the members
    of classes, the presence of variables (whose values, like the compiler's version, are
    build-specific); `__all__` by its contents."""
    outline: dict[str, object] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef):
            overloads = outline.setdefault(node.name, [])
            assert isinstance(overloads, list)
            overloads.append((_decorators(node), _parameters(node)))
        elif isinstance(node, ast.ClassDef):
            outline[node.name] = ("class", [ast.unparse(b) for b in node.bases],
                                  _outline(node.body))
        elif isinstance(node, (ast.AnnAssign, ast.Assign)):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            for target in targets:
                if isinstance(target, ast.Name):
                    value = "variable"
                    if target.id == "__all__" and node.value is not None:
                        value = ("__all__", sorted(ast.literal_eval(node.value)))
                    outline[target.id] = value
    return outline


def _stub_outline(path: Path) -> dict[str, object]:
    return _outline(ast.parse(path.read_text(), filename=str(path)).body)


def _differences(committed: dict, generated: dict, where: str = "") -> list[str]:
    lines = []
    for name in sorted(set(committed) | set(generated)):
        if name not in generated:
            lines.append(f"{where}{name}: in the committed stub, not in the module")
        elif name not in committed:
            lines.append(f"{where}{name}: in the module, not in the committed stub")
        else:
            a, b = committed[name], generated[name]
            if isinstance(a, tuple) and isinstance(b, tuple) and a[:1] == b[:1] == ("class",):
                if a[1] != b[1]:
                    lines.append(f"{where}{name}: bases {a[1]} != {b[1]}")
                lines += _differences(a[2], b[2], f"{where}{name}.")
            elif a != b:
                lines.append(f"{where}{name}: committed {a!r}\n    generated {b!r}")
    return lines


def test_outline_sees_a_changed_parameter_list():
    """The comparison itself: a renamed parameter, an added default, a new function or method,
    a changed __all__ are differences; annotations, docstrings and values are not."""
    base = ast.parse(
        '__all__ = ["f", "C"]\nversion: str = "1"\n'
        'def f(arg0: int, arg1: float) -> int:\n    """doc"""\n'
        'class C:\n    def m(self, x: int) -> None: ...\n')
    same = ast.parse(
        '__all__ = ["C", "f"]\nversion: str\n'
        'def f(arg0: typing.SupportsInt, arg1) -> typing.Any: ...\n'
        'class C:\n    def m(self, x: "int") -> None:\n        """other doc"""\n')
    assert _differences(_outline(base.body), _outline(same.body)) == []
    for changed in [("__all__ = ['f', 'C']\nversion: str\ndef f(arg0, other): ...\n"
                     "class C:\n    def m(self, x): ...\n"),
                    ("__all__ = ['f', 'C']\nversion: str\ndef f(arg0, arg1=1): ...\n"
                     "class C:\n    def m(self, x): ...\n"),
                    ("__all__ = ['f', 'C']\nversion: str\ndef f(arg0, arg1): ...\n"
                     "class C:\n    def m(self, x): ...\n    def n(self): ...\n"),
                    ("__all__ = ['f', 'C', 'g']\nversion: str\ndef f(arg0, arg1): ...\n"
                     "def g(): ...\nclass C:\n    def m(self, x): ...\n")]:
        assert _differences(_outline(base.body), _outline(ast.parse(changed).body)), changed


def test_stub_matches_the_compiled_module(tmp_path):
    """Regenerates the stub from the chainrule under test; its names and parameter lists must be
    the committed python/chainrule/_core.pyi's. After changing a binding, regenerate with
        PYTHONPATH=python pybind11-stubgen chainrule._core -o /tmp/stubs
    and copy it over python/chainrule/_core.pyi (keeping the hand-tidied annotations)."""
    if importlib.util.find_spec("pybind11_stubgen") is None:
        pytest.skip("pybind11-stubgen is not installed")
    run = subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", "chainrule._core", "-o", str(tmp_path),
         "--exit-code"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    generated = tmp_path / "chainrule" / "_core.pyi"
    assert generated.is_file(), run.stdout + run.stderr
    problems = _differences(_stub_outline(COMMITTED_STUB), _stub_outline(generated))
    assert not problems, "python/chainrule/_core.pyi is out of date:\n" + "\n".join(problems)


def test_type_information_ships_with_the_package():
    """The imported package (a source tree or an installed wheel) carries py.typed and the
    stub of its compiled module."""
    assert (PACKAGE_DIR / "py.typed").is_file()
    stub = PACKAGE_DIR / "_core.pyi"
    assert stub.is_file()
    assert _stub_outline(stub) == _stub_outline(COMMITTED_STUB)


def test_all_lists_every_public_name():
    """With py.typed, a strict type checker sees only the names in chainrule.__all__."""
    public = {name for name, value in vars(cr).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)
              and type(value).__module__ != "__future__"}
    listed = set(cr.__all__)
    assert len(listed) == len(cr.__all__), "a name is listed twice in chainrule.__all__"
    assert not public - listed, f"public names missing from chainrule.__all__: {public - listed}"
    assert not {n for n in listed if not hasattr(cr, n)}, "__all__ names a missing attribute"
    assert {"autograd", "nn", "optim", "utils"} <= listed


def test_examples_pass_mypy_strict(tmp_path):
    pytest.importorskip("mypy")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "examples/xor.py", "examples/digits.py", "examples/digits_cnn.py", "examples/char_rnn.py"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success" in run.stdout, run.stdout
