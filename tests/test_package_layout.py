"""The package's arrows point one way: its modules import each other without a circle (not even
one held together by imports inside functions), and nn and optim speak Tensor and the op table,
never _core (the optimizers' fused steps go through optim/fused.py, their one door)."""
from __future__ import annotations

import ast
from pathlib import Path

import chainrule as cr

PACKAGE = Path(cr.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, everywhere: bool = False) -> list[str]:
    """chainrule modules imported at module level (outside `if TYPE_CHECKING:`), or anywhere."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = []
    if everywhere:
        nodes = list(ast.walk(tree))
    else:
        todo = list(tree.body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.If) and not _is_type_checking(node):
                todo += node.body + node.orelse
            elif isinstance(node, ast.Try):
                todo += node.body + node.orelse + node.finalbody
            else:
                nodes.append(node)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("chainrule")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chainrule"):
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in MODULES or a.name == "_core"]
    return found


def _edges(name: str) -> set[str]:
    """What loading `name` needs first: the modules it imports and, for a module of another
    package, that package's __init__ too (which runs before the module)."""
    out = set()
    for target in _imports(MODULES[name]):
        parts = target.split(".")
        for i in range(2, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in MODULES and not name.startswith(prefix + ".") and prefix != name:
                out.add(prefix)
    return out


def test_no_import_circles():
    graph = {name: _edges(name) for name in MODULES}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(start: str) -> list[str] | None:
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name)
            assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_check_finds_a_circle():
    assert "chainrule.creation" in _edges("chainrule.functions")
    assert "chainrule.tensor" not in _edges("chainrule.autograd.engine")


def test_nn_and_optim_never_touch_core():
    for name, path in MODULES.items():
        if name.startswith(("chainrule.nn", "chainrule.optim")) and name != "chainrule.optim.fused":
            assert "chainrule._core" not in _imports(path, everywhere=True), f"{name} imports _core"
    assert "chainrule._core" in _imports(MODULES["chainrule.optim.fused"])  # the check can fail
