"""How a (text, instruction) pair becomes encoder input: the Cuckoo-style prompt, tokenised once
per instruction, with the text cut into overlapping windows that fit the model.

Both primitives are BIO tagging over the same prompt. `get_span` tags the words of the text;
`get_label` lists the choices "yes" and "no" after the question and tags the right one, so one
token-classification head (and one checkpoint) serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from falconer_core.errors import ConfigError, ModelError
from falconer_core.metamodel.shapes import shape_id

if TYPE_CHECKING:
    import torch

# Label scheme recorded in every checkpoint.
O, B, I = 0, 1, 2
LABELS = ("O", "B", "I")
IGNORE = -100

_PLACEHOLDER = re.compile(r"\{(text|instruction|yes|no)\}")


@dataclass(frozen=True)
class PromptFormat:
    """The templates; `{text}` comes first, the rest follows it (so windows share one suffix)."""

    span_template: str = "User:\n\n{text}\n\nQuestion: {instruction}\n\nAssistant:\n\nAnswer:"
    label_template: str = (
        "User:\n\n{text}\n\nQuestion: {instruction}\nOptions: {yes}, {no}\n\nAssistant:\n\nAnswer:"
    )

    def __post_init__(self) -> None:
        for name, template, needed in (
            ("span_template", self.span_template, ("text", "instruction")),
            ("label_template", self.label_template, ("text", "instruction", "yes", "no")),
        ):
            found = _PLACEHOLDER.findall(template)
            if sorted(found) != sorted(needed) or found[0] != "text":
                raise ConfigError(
                    f"{name} must contain each of {needed} exactly once, with {{text}} first; "
                    f"got placeholders {found}"
                )

    def split(self, kind: str, instruction: str) -> tuple[str, str, tuple[tuple[int, int], ...]]:
        """Return (prefix, suffix, choice char ranges in suffix) for one instruction."""
        template = self.span_template if kind == "span" else self.label_template
        prefix, rest = template.split("{text}")
        suffix, choices, cursor = "", {}, 0
        for match in _PLACEHOLDER.finditer(rest):
            suffix += rest[cursor : match.start()]
            value = instruction if match.group(1) == "instruction" else match.group(1)
            if match.group(1) in ("yes", "no"):
                choices[match.group(1)] = (len(suffix), len(suffix) + len(value))
            suffix += value
            cursor = match.end()
        suffix += rest[cursor:]
        return prefix, suffix, tuple(choices[c] for c in ("yes", "no") if c in choices)

    def to_dict(self) -> dict:
        return {"span_template": self.span_template, "label_template": self.label_template}


@dataclass
class EncodedText:
    """One text's tokens, with the word each token starts and the words' character ranges."""

    ids: list[int]
    first_token_word: list[int]  # word index if the token is its word's first sub-token, else -1
    word_chars: list[tuple[int, int]]  # (start, end) character offsets of each word
    shapes: list[int] | None = None  # shape id per token (see shapes.py), when the encoder uses them


@dataclass
class Window:
    """One model input: prompt prefix + a slice of the text's tokens + prompt suffix."""

    item: int  # index of the source text in the batch
    input_ids: list[int]
    text_offset: int  # position of the window's first text token in input_ids
    token_start: int  # first text token (index into EncodedText.ids) in this window
    token_end: int
    choice_positions: tuple[int, ...] = ()  # label mode: positions of "yes" and "no"
    labels: list[int] | None = field(default=None, repr=False)
    shape_ids: list[int] | None = field(default=None, repr=False)
    teacher: torch.Tensor | None = field(default=None, repr=False)  # training: the parent's tag probabilities (`distill.py`)


class PromptEncoder:
    """Tokenises texts and prompts for one tokenizer and model window size."""

    def __init__(self, tokenizer, max_length: int, fmt: PromptFormat, overlap: int = 64, shapes: bool = False):
        self.tokenizer = tokenizer
        self.shapes = shapes
        self.max_length = max_length
        self.format = fmt
        self.overlap = overlap
        self._prompt_cache: dict[tuple[str, str], tuple[list[int], list[int], tuple[int, ...]]] = {}
        # The special tokens the tokenizer wraps a sequence in ([CLS] ... [SEP], <s> ... </s>).
        wrapped = tokenizer("a")["input_ids"]
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        lead = wrapped.index(bare[0])
        self._head, self._tail = wrapped[:lead], wrapped[lead + len(bare) :]
        self._n_special = len(self._head) + len(self._tail)

    def encode_texts(self, texts: list[str]) -> list[EncodedText]:
        """Tokenise texts (no special tokens) keeping character offsets and word boundaries."""
        batch = self.tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False, verbose=False
        )
        encoded = []
        for i, source in enumerate(texts):
            ids = batch["input_ids"][i]
            offsets = batch["offset_mapping"][i]
            first, words, token_word, last_word = [], [], [], None
            for (start, end), word in zip(offsets, batch.word_ids(i)):
                if word is None or start == end:
                    first.append(-1)
                    token_word.append(-1)
                    continue
                if word != last_word:
                    first.append(len(words))
                    words.append((start, end))
                    last_word = word
                else:
                    first.append(-1)
                    words[-1] = (words[-1][0], end)
                token_word.append(len(words) - 1)
            shapes = None
            if self.shapes:
                shapes = [
                    0 if w < 0 else shape_id(source[words[w][0] : words[w][1]], source[s:e])
                    for (s, e), w in zip(offsets, token_word)
                ]
            encoded.append(EncodedText(ids, first, words, shapes))
        return encoded

    def prompt(self, kind: str, instruction: str) -> tuple[list[int], list[int], tuple[int, ...]]:
        """Token ids of the prompt before and after the text, and choice token positions."""
        key = (kind, instruction)
        if key not in self._prompt_cache:
            prefix, suffix, choice_chars = self.format.split(kind, instruction)
            pre = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
            post = self.tokenizer(suffix, add_special_tokens=False, return_offsets_mapping=True)
            positions = []
            for char_start, char_end in choice_chars:
                hits = [
                    t for t, (s, e) in enumerate(post["offset_mapping"]) if s < char_end and e > char_start
                ]
                if not hits:
                    raise ModelError(f"the tokenizer lost a label choice in the prompt {suffix!r}")
                positions.append(hits[0])
            self._prompt_cache[key] = (pre, post["input_ids"], tuple(positions))
        return self._prompt_cache[key]

    def windows(self, item: int, text: EncodedText, kind: str, instruction: str) -> list[Window]:
        """Cut one text into overlapping windows; each carries the whole prompt."""
        pre, post, choices = self.prompt(kind, instruction)
        budget = self.max_length - len(pre) - len(post) - self._n_special
        if budget < 16:
            raise ModelError(
                f"the instruction leaves {budget} tokens of a {self.max_length}-token window for the "
                "text; shorten the instruction"
            )
        overlap = min(self.overlap, budget // 4)
        n = len(text.ids)
        starts = [0]
        while starts[-1] + budget < n:
            starts.append(starts[-1] + budget - overlap)
        out = []
        for start in starts:
            end = min(start + budget, n)
            body = pre + text.ids[start:end] + post
            ids = self._head + body + self._tail
            shift = len(self._head)
            shape_ids = None
            if text.shapes is not None:
                shape_ids = [0] * (shift + len(pre)) + text.shapes[start:end] + [0] * (len(post) + len(self._tail))
            out.append(
                Window(
                    item=item,
                    input_ids=ids,
                    text_offset=shift + len(pre),
                    token_start=start,
                    token_end=end,
                    choice_positions=tuple(shift + len(pre) + (end - start) + p for p in choices),
                    shape_ids=shape_ids,
                )
            )
        return out


def word_tags(text: EncodedText, spans: list[tuple[int, int]]) -> list[int]:
    """Gold BIO tag per word from character spans; a word overlapping a span is inside it."""
    tags = [O] * len(text.word_chars)
    for start, end in sorted(spans):
        inside = [w for w, (ws, we) in enumerate(text.word_chars) if ws < end and we > start]
        for rank, w in enumerate(inside):
            tags[w] = B if rank == 0 else I
    return tags
