"""From tag probabilities back to answers: words merged across windows, BIO runs to spans with
character offsets, and the yes/no choice to a label with a confidence."""

from __future__ import annotations

import numpy as np

from falconer_core.metamodel.prompt import B, EncodedText, I, O, Window
from falconer_core.types import LabelResult, Span


def merge_word_probs(text: EncodedText, windows: list[Window], probs: list[np.ndarray]) -> np.ndarray:
    """Tag probabilities per word; where windows overlap, the window that sees the word with
    the most context on both sides wins."""
    n_words, n_tokens = len(text.word_chars), len(text.ids)
    out = np.zeros((n_words, 3), dtype=np.float32)
    out[:, O] = 1.0
    best = np.full(n_words, -1, dtype=np.int64)
    first = np.asarray(text.first_token_word, dtype=np.int64)
    for window, p in zip(windows, probs):
        words = first[window.token_start : window.token_end]
        keep = words >= 0
        if len(windows) == 1:
            out[words[keep]] = p[keep]
            return out
        pos = np.arange(len(words))
        big = n_tokens + 1
        left = pos if window.token_start > 0 else np.full_like(pos, big)
        right = (len(words) - 1 - pos) if window.token_end < n_tokens else np.full_like(pos, big)
        centrality = np.minimum(left, right)
        better = keep & (centrality > best[np.where(keep, words, 0)])
        out[words[better]] = p[better]
        best[words[better]] = centrality[better]
    return out


def spans_from_word_probs(
    source: str, text: EncodedText, word_probs: np.ndarray, threshold: float = 0.5
) -> list[Span]:
    """A word is inside a span when P(B) + P(I) >= threshold (B or I by the larger); a span
    opens at B (or at an I that follows O) and runs over the following I's."""
    if len(word_probs) == 0:
        return []
    tags = np.where(word_probs[:, B] >= word_probs[:, I], B, I)
    tags = np.where(word_probs[:, B] + word_probs[:, I] >= threshold, tags, O)
    spans: list[Span] = []
    current: list[int] = []

    def close() -> None:
        if current:
            start, end = text.word_chars[current[0]][0], text.word_chars[current[-1]][1]
            confidence = float(np.mean([word_probs[w, tags[w]] for w in current]))
            spans.append(Span(source[start:end], start, end, round(confidence, 4)))
            current.clear()

    for w, tag in enumerate(tags):
        if tag == B or (tag == I and not current):
            close()
            current.append(w)
        elif tag == I:
            current.append(w)
        else:
            close()
    close()
    return spans


def span_confidence(word_probs: np.ndarray, threshold: float = 0.5) -> float:
    """How sure a text's tagging is: the least sure word's P(inside) or P(outside), whichever
    it was decided as at `threshold` (1.0 for a text without words). A shaky kept span and a
    dropped word that nearly made it both lower it; cascades route on it, self-training and
    active sampling rank by it."""
    if len(word_probs) == 0:
        return 1.0
    inside = word_probs[:, B] + word_probs[:, I]
    return float(np.min(np.where(inside >= threshold, inside, 1.0 - inside)))


def label_from_choice_probs(choice_probs: list[np.ndarray]) -> LabelResult:
    """Each window gives P(B) for "yes" and "no"; the label holds if any window says yes."""
    scores = [float(p[0] / (p[0] + p[1] + 1e-9)) for p in choice_probs]
    yes = max(scores)
    return LabelResult(yes >= 0.5, round(yes if yes >= 0.5 else 1.0 - yes, 4))
