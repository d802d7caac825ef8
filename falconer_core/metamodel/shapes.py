"""Casing that an uncased tokenizer throws away, given back to the encoder as a feature.

The packaged MiniLM lowercases its input, so "BRCA1", "Brca1" and "brca1" reach it as the same
tokens, yet capitalisation is the strongest surface cue for names such as genes. Each text
token gets a shape id from the original characters of the token and of its word (lower,
Title, UPPER, miXed, no letters); a small learned embedding of that id is added to the token
embeddings. Prompt and special tokens get id 0. The embedding starts at zero, so a fresh
checkpoint answers exactly as its base encoder did until fine-tuning teaches it the cue.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Case classes of a string.
NO_LETTERS, LOWER, TITLE, UPPER, MIXED = range(5)
#: Shape ids: 0 for prompt/special/padding, then one per (word case, token case).
N_SHAPES = 1 + 5 * 5
WEIGHTS_FILE = "shape_embedding.safetensors"


def case_class(chars: str) -> int:
    """The case pattern of a string's letters."""
    letters = [c for c in chars if c.isalpha()]
    if not letters:
        return NO_LETTERS
    lower = [c.islower() for c in letters]
    if all(lower):
        return LOWER
    if not any(lower):
        return UPPER if len(letters) > 1 else TITLE
    if not lower[0] and all(lower[1:]):
        return TITLE
    return MIXED


def shape_id(word: str, token: str) -> int:
    """Shape id of a text token from its own characters and its word's."""
    return 1 + 5 * case_class(word) + case_class(token)


def tokenizer_lowercases(tokenizer) -> bool:
    """Does the tokenizer map "A" and "a" to the same ids (so casing is lost)?"""
    return tokenizer("A", add_special_tokens=False)["input_ids"] == tokenizer("a", add_special_tokens=False)["input_ids"]


class ShapeEmbedding(torch.nn.Embedding):
    """One vector per shape id, added to the token embeddings; id 0 is fixed at zero."""

    def __init__(self, hidden_size: int):
        super().__init__(N_SHAPES, hidden_size, padding_idx=0)
        with torch.no_grad():
            self.weight.zero_()

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        save_file({"weight": self.weight.detach().cpu().contiguous()}, str(folder / WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: Path) -> ShapeEmbedding:
        from safetensors.torch import load_file

        weight = load_file(str(folder / WEIGHTS_FILE))["weight"]
        module = cls(weight.shape[1])
        with torch.no_grad():
            module.weight.copy_(weight)
        return module
