"""Pull one JSON value out of model text, with a few bounded, literal repairs.

Servers without structured output, and small local models, wrap JSON in prose or code fences,
leave trailing commas, or stop mid-object at the token limit. These helpers recover the
common cases by string surgery only: model text is never evaluated as code.
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


def _close_truncated(fragment: str, open_stack: list[str], in_string: bool) -> str:
    """Close a value cut off by the token limit: end the string, drop a dangling key or comma."""
    text = fragment + ('"' if in_string else "")
    text = re.sub(r'(,\s*"[^"]*"\s*:?\s*|,\s*|:\s*)$', "", text.rstrip())
    return text + "".join(reversed(open_stack))


def extract_json(text: str) -> Any:
    """The first JSON object or array in `text`; ValueError when none can be recovered."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    sources = [match.group(1) for match in _FENCE.finditer(stripped)] + [stripped]
    for source in sources:
        for match in re.finditer(r"[{\[]", source):
            fragment, open_stack, in_string = balanced_prefix(source, match.start())
            try:
                if not open_stack and not in_string:
                    return _loads_lenient(fragment)
                return _loads_lenient(_close_truncated(fragment, open_stack, in_string))
            except ValueError:
                continue
    preview = stripped[:120].replace("\n", " ")
    raise ValueError(f"no JSON object found in the model output (starts: {preview!r})")
