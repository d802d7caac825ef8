"""Prompts and answer schemas of the LLM annotator, kept apart so they can be read and tuned.

Several texts go in one call, each under a numeric id, and the answer repeats the ids, so a
batch costs one prompt header instead of one per text and answers cannot be misaligned. A
single text gets a flat answer (`{"label": true}`, `{"spans": [...]}`): simpler for small
models, and what `LocalLLM` can fill by schema-guided decoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LABEL_SYSTEM = (
    "You are a careful data annotator. You read short texts and answer a yes/no question about "
    "each one. Judge each text on its own content only."
)

SPAN_SYSTEM = (
    "You are a careful data annotator. You read short texts and copy out the exact pieces of "
    "text that answer a request. Copy each piece character for character from the text, as "
    "short as possible while complete. Never paraphrase, translate or invent; return an empty "
    "list when a text contains no answer."
)


def _answers_schema(answer: Mapping[str, Any], optional: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The reply shape of every annotator prompt, `{"answers": [{"id": n, ...}]}` with one entry per
    text: the `answer` fields required, the `optional` ones not."""
    return {
        "type": "object",
        "properties": {
            "answers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}, **answer, **(optional or {})},
                    "required": ["id", *answer],
                },
            }
        },
        "required": ["answers"],
    }


LABEL_SCHEMA: dict[str, Any] = _answers_schema(
    {"label": {"type": "boolean"}}, {"confidence": {"type": "number", "minimum": 0, "maximum": 1}}
)
SPAN_SCHEMA: dict[str, Any] = _answers_schema({"spans": {"type": "array", "items": {"type": "string"}}})


LABEL_ONE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "boolean"}},
    "required": ["label"],
}

SPAN_ONE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"spans": {"type": "array", "items": {"type": "string"}}},
    "required": ["spans"],
}


def label_schema(count: int) -> dict[str, Any]:
    """The answer schema for a batch of `count` texts."""
    return LABEL_ONE_SCHEMA if count == 1 else LABEL_SCHEMA


def span_schema(count: int) -> dict[str, Any]:
    """The answer schema for a batch of `count` texts."""
    return SPAN_ONE_SCHEMA if count == 1 else SPAN_SCHEMA


def _numbered(texts: Sequence[str]) -> str:
    return "\n\n".join(f"[{i}] {text}" for i, text in enumerate(texts, 1))


def label_messages(instruction: str, texts: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages asking one yes/no question of each numbered text (or of one text)."""
    if len(texts) == 1:
        user = (
            f"Text: {texts[0]}\n\nQuestion: {instruction}\n\n"
            'Answer true or false. Reply in JSON: {"label": true} or {"label": false}.'
        )
        return [{"role": "system", "content": LABEL_SYSTEM}, {"role": "user", "content": user}]
    example = ", ".join(f'{{"id": {i}, "label": true}}' for i in range(1, min(len(texts), 2) + 1))
    user = (
        f"Question: {instruction}\n\nTexts:\n{_numbered(texts)}\n\n"
        f"Answer the question for every text, true or false. Reply in JSON like "
        f'{{"answers": [{example}]}} with one entry per id from 1 to {len(texts)}.'
    )
    return [{"role": "system", "content": LABEL_SYSTEM}, {"role": "user", "content": user}]


def span_messages(instruction: str, texts: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages asking for exact substrings of each numbered text (or of one text)."""
    if len(texts) == 1:
        user = (
            f"Text: {texts[0]}\n\nRequest: {instruction}\n\n"
            'List the exact substrings of the text that answer the request. Reply in JSON with '
            'the list under "spans"; give an empty list when there is none.'
        )
        return [{"role": "system", "content": SPAN_SYSTEM}, {"role": "user", "content": user}]
    user = (
        f"Request: {instruction}\n\nTexts:\n{_numbered(texts)}\n\n"
        f"For every text, list the exact substrings that answer the request. Reply in JSON like "
        f'{{"answers": [{{"id": 1, "spans": ["..."]}}]}} with one entry per id from 1 to {len(texts)}.'
    )
    return [{"role": "system", "content": SPAN_SYSTEM}, {"role": "user", "content": user}]
