"""Reading a yes/no answer written as text: one parser for a gold label in a corpus cell and for
an LLM's label, so the two accept the same words."""

from __future__ import annotations

from typing import Any

#: Words read as True / False, compared after stripping and lower-casing.
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


def parse_bool(value: Any, what: str = "value") -> bool:
    """A bool from a bool, 0/1, a numpy scalar of either, or one of true/false, t/f, yes/no,
    y/n, 1/0 in any case. Anything else raises `ValueError` naming `what`: guessing would turn a
    stray answer into a label (`bool("no")` is True)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
    elif hasattr(value, "item"):  # numpy bools and numbers
        try:
            return parse_bool(value.item(), what)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{what} {value!r} is not a boolean; use true/false, yes/no or 1/0")


__all__ = ["FALSE_WORDS", "TRUE_WORDS", "parse_bool"]
