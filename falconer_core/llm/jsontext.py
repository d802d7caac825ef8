"""Pull one JSON value out of model text, with a few bounded, literal repairs.

Servers without structured output, and small local models, wrap JSON in prose or code fences
or leave trailing commas. These helpers recover those cases by string surgery only: model text
is never evaluated as code. A value cut off before it closes is never "closed" here: that
would silently drop the answers after the cut (`["Bob", "Carol Sm` becoming `["Bob"]`), so it
is reported as unusable instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_CLOSERS = {"{": "}", "[": "]"}


def balanced_prefix(text: str, start: int) -> tuple[str, list[str], bool]:
    """Scan from an opening bracket; return the text up to its match, open brackets, in-string."""
    stack: list[str] = []
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in _CLOSERS:
            stack.append(_CLOSERS[char])
        elif char in "}]":
            if not stack or stack[-1] != char:
                return text[start:index], stack, False
            stack.pop()
            if not stack:
                return text[start : index + 1], [], False
    return text[start:], stack, in_string


def _loads_lenient(candidate: str) -> Any:
    """json.loads, then again without trailing commas."""
    try:
        return json.loads(candidate)
    except ValueError:
        return json.loads(_TRAILING_COMMA.sub(r"\1", candidate))


def extract_json(text: str) -> Any:
    """The first JSON object or array in `text`; ValueError when none can be recovered."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    sources = [match.group(1) for match in _FENCE.finditer(stripped)] + [stripped]
    cut_off = False
    for source in sources:
        for match in re.finditer(r"[{\[]", source):
            fragment, open_stack, in_string = balanced_prefix(source, match.start())
            if open_stack or in_string:
                if match.start() + len(fragment) == len(source):
                    cut_off = True  # runs to the end: any later bracket is only a piece of it
                    break
                continue
            try:
                return _loads_lenient(fragment)
            except ValueError:
                continue
    preview = stripped[:120].replace("\n", " ")
    if cut_off:
        raise ValueError(f"the JSON value is cut off before it closes (starts: {preview!r}); reply with the whole value")
    raise ValueError(f"no JSON object found in the model output (starts: {preview!r})")
