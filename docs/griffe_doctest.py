"""A Griffe extension for the API reference: chainrule's docstrings show their examples as bare
doctest lines (`>>> ...`), which Markdown would read as nested block quotes. This wraps each
run of doctest lines (a `>>>` line up to the next blank line) in a ```pycon fence."""
from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    lines, out, in_fence, in_doctest = text.split("\n"), [], False, False
    for line in lines:
        stripped = line.strip()
        if in_doctest and not stripped:
            out.append("```")
            in_doctest = False
        if not in_doctest and stripped.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and not in_doctest and stripped.startswith(">>>"):
            out += ["", "```pycon"]
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
