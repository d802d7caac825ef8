"""Schema-guided decoding for small local models and simple answer schemas.

A 135M model asked for `{"label": true}` often writes `{true}` or prose. For flat object
schemas (boolean, string, enum and list-of-string fields) the JSON skeleton is written by us
and the model only fills the values: a boolean or enum is the option with the highest
next-token score, a string is generated up to its closing quote, a list grows while the model
prefers another item over `]`. The result is valid JSON by construction. Richer schemas (the
plan) fall back to free generation plus JSON extraction.

Each decision re-reads the whole text so far: simpler and more robust to tokenizer merges at
the boundaries than keeping a KV cache, and cheap for the short prompts annotators send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _field_kind(schema: Mapping[str, Any]) -> str | None:
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return "enum"
    kind = schema.get("type")
    if kind in ("boolean", "string"):
        return kind
    if kind == "array" and (schema.get("items") or {}).get("type") == "string":
        return "string_list"
    return None


def guided_fields(schema: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]] | None:
    """The (name, schema) fields to fill, or None when the schema is not flat enough."""
    if not schema or schema.get("type") != "object" or not schema.get("properties"):
        return None
    properties: Mapping[str, Any] = schema["properties"]
    names = list(schema.get("required") or properties)
    fields = [(name, properties.get(name, {})) for name in names]
    return fields if fields and all(_field_kind(s) for _, s in fields) else None


class GuidedDecoder:
    """Fills a flat schema's values with a causal LM, given the chat prompt as text."""

    def __init__(self, tokenizer: Any, model: Any, device: str = "cpu", *,
                 max_string_tokens: int = 40, max_items: int = 8) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.max_string_tokens = max_string_tokens
        self.max_items = max_items
        self.generated_tokens = 0
        #: Set when a string ran out of `max_string_tokens` before its closing quote.
        self.truncated = False

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _choose(self, text: str, options: list[str]) -> int:
        """Index of the option the model scores highest as the continuation of `text`.

        Options are compared at the first token where their tokenizations of `text + option`
        differ, so a merge across the boundary (` [` + `"` becoming ` ["`) cannot bias the
        choice.
        """
        import torch

        encoded = [self._ids(text + option) for option in options]
        common = 0
        shortest = min(len(ids) for ids in encoded)
        while common < shortest and all(ids[common] == encoded[0][common] for ids in encoded):
            common += 1
        if common == 0 or common == shortest:
            return 0  # nothing to compare (an empty text, or one option extends another)
        with torch.inference_mode():
            logits = self.model(torch.tensor([encoded[0][:common]], device=self.device)).logits[0, -1]
        self.generated_tokens += 1
        scores = [float(logits[ids[common]]) for ids in encoded]
        return max(range(len(options)), key=scores.__getitem__)

    def _string(self, text: str) -> str:
        """Generate a JSON string's content after an opening quote, up to the closing one."""
        import torch
        from transformers import StoppingCriteriaList

        inputs = torch.tensor([self._ids(text)], device=self.device)
        tokenizer = self.tokenizer
        length = inputs.shape[1]
        with torch.inference_mode():
            output = self.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=self.max_string_tokens,
                do_sample=False, stopping_criteria=StoppingCriteriaList([_QuoteClosed(tokenizer, length)]),
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        self.generated_tokens += int(output.shape[1] - length)
        raw = tokenizer.decode(output[0, length:], skip_special_tokens=True)
        end = _closing_quote(raw)
        if end < 0 and "\n" not in raw and output.shape[1] - length >= self.max_string_tokens:
            self.truncated = True  # cut at the cap: the value is incomplete
        raw = (raw[:end] if end >= 0 else raw).split("\n")[0]
        try:
            return json.loads(f'"{raw}"')
        except ValueError:
            return raw

    def fill(self, prompt: str, fields: list[tuple[str, Mapping[str, Any]]]) -> str:
        """The JSON text of an object with every field filled by the model."""
        values: dict[str, Any] = {}
        text = prompt + "{"
        for position, (name, schema) in enumerate(fields):
            text += ("" if position == 0 else ", ") + json.dumps(name) + ":"
            kind = _field_kind(schema)
            if kind == "boolean":
                values[name] = self._choose(text, [" true", " false"]) == 0
            elif kind == "enum":
                options = list(schema["enum"])
                values[name] = options[self._choose(text, [f' "{o}"' for o in options])]
            elif kind == "string":
                values[name] = self._string(text + ' "')
            else:
                values[name] = self._string_list(text)
            text += " " + json.dumps(values[name], ensure_ascii=False)
        return json.dumps(values, ensure_ascii=False)

    def _string_list(self, text: str) -> list[str]:
        items: list[str] = []
        for index in range(self.max_items):
            stop, more = (" []", ' ["') if index == 0 else ("]", ', "')
            if self._choose(text, [stop, more]) == 0:
                break
            text += more
            item = self._string(text)
            if not item.strip() or item in items:
                break
            items.append(item)
            text += json.dumps(item, ensure_ascii=False)[1:]
        return items


class _QuoteClosed:
    """Stopping rule: the generated text contains the string's closing quote (or a newline)."""

    def __init__(self, tokenizer: Any, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        text = self.tokenizer.decode(input_ids[0, self.prompt_length :])
        done = _closing_quote(text) >= 0 or "\n" in text
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def _closing_quote(text: str) -> int:
    """Index of the first unescaped double quote in `text`, or -1."""
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return index
    return -1
