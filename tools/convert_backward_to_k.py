#!/usr/bin/env python3
"""Rewrites op-table files so that their backward formulas can be recorded (double backward).

    python tools/convert_backward_to_k.py                      # every python/chainrule/ops/*.py
    python tools/convert_backward_to_k.py FILE.py [FILE.py...] # only these
    python tools/convert_backward_to_k.py --check [FILES]      # exit 1 if a file would change

What it does to each file (idempotent: running it twice changes nothing the second time):
1. `C.<kernel>(` becomes `K.<kernel>(` everywhere except inside `def forward(` bodies (a
   forward runs on raw arrays and is never recorded by create_graph) and for names that are not
   kernels (C.apply, C.wrap, C.DType, C.Tensor, C.from_numpy, C.grad_*). K (chainrule.ops.kernels)
   is the `_core` function itself normally, and its differentiable counterpart under
   create_graph=True, found by name in the op table.
2. `from chainrule.ops.kernels import K` is added after the `from chainrule import _core` line
   when K is used and not yet imported.
3. The internal node base's old name: `Function` (imported from chainrule.autograd.function)
   becomes `OpNode` (`cr.autograd.Function` is now the user API, autograd/custom_function.py).
Files it never touches: kernels.py, table.py, stubs.py, __init__.py, inplace.py (not op-table files).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "python" / "chainrule" / "ops"
SKIP = {"kernels.py", "table.py", "stubs.py", "__init__.py", "inplace.py"}
NOT_KERNELS = {"apply", "wrap", "DType", "Tensor", "TensorBase", "Node", "DTYPES", "from_numpy"}
CALL = re.compile(r"(?<![\w.])C\.([A-Za-z_][A-Za-z_0-9]*)\(")
IMPORT_K = "from chainrule.ops.kernels import K\n"


def convert_text(text: str) -> str:
    text = re.sub(r"from chainrule\.autograd\.function import ([^\n]*)\bFunction\b",
                  lambda m: m.group(0)[:-len("Function")] + "OpNode", text)
    if "import OpNode" in text or re.search(r"import [^\n]*\bOpNode\b", text):
        text = re.sub(r"\(Function\)", "(OpNode)", text)
    lines = text.splitlines(keepends=True)
    out = []
    forward_indent: int | None = None
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if forward_indent is not None and stripped.strip() and indent <= forward_indent:
            forward_indent = None
        if stripped.startswith("def forward("):
            forward_indent = indent
            out.append(line)
            continue
        if forward_indent is None:
            line = CALL.sub(lambda m: m.group(0) if (m.group(1) in NOT_KERNELS or m.group(1).startswith("grad_"))
                            else f"K.{m.group(1)}(", line)
        out.append(line)
    text = "".join(out)
    if re.search(r"(?<![\w.])K\.\w+\(", text) and IMPORT_K not in text:
        anchor = "from chainrule import _core\n"
        if anchor in text:
            text = text.replace(anchor, anchor + IMPORT_K, 1)
        else:  # after the last top-level import
            matches = list(re.finditer(r"^(from \S+ import [^\n(]*(\([^)]*\))?|import \S+)\n", text, re.M))
            at = matches[-1].end() if matches else 0
            text = text[:at] + IMPORT_K + text[at:]
    return text


def main(argv: list[str]) -> int:
    check = "--check" in argv
    files = [Path(a) for a in argv if a != "--check"]
    if not files:
        files = sorted(p for p in OPS.glob("*.py") if p.name not in SKIP)
    changed = []
    for path in files:
        if path.name in SKIP:
            continue
        before = path.read_text()
        after = convert_text(before)
        if after != before:
            changed.append(str(path))
            if not check:
                path.write_text(after)
    for name in changed:
        print(("would convert " if check else "converted ") + name)
    return 1 if (check and changed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
