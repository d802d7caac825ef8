"""Active sampling: after a first random batch is annotated and a metamodel tuned on it, the next
texts to annotate are those the metamodel is least sure about, spread over the corpus.

Uncertainty per text is the largest over the plan's per-text steps: for a span step, how close
its least sure word is to the in-or-out boundary; for a label step, how close the yes/no answer
is to a coin flip (both scaled to 0 = sure, 1 = a toss-up). Sorting by uncertainty alone would
fill a batch with near-copies of one confusing text (retweets, boilerplate), so the batch is
picked greedily down the ranking, passing over any text whose words overlap too much with one
already picked. Held-out texts for evaluation are never chosen this way: a set picked for being
hard would make every score look worse than the corpus's (they stay a random draw).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from falconer_core.plan import Plan

_WORD = re.compile(r"\w+")


def uncertainty(metamodel, plan: Plan, texts: Sequence[str]) -> list[float]:
    """Per text, 0 (the metamodel is sure of every step) to 1 (a toss-up on some step)."""
    from falconer_core.metamodel.decoding import span_confidence

    texts = list(texts)
    out = [0.0] * len(texts)
    for step in plan.steps:
        if step.for_each is not None:  # templated per span: nothing to ask of an arbitrary text
            continue
        if step.op == "label":
            scores = [2.0 * (1.0 - r.confidence) for r in metamodel.get_label(texts, step.instruction, progress=False)]
        else:
            probs = metamodel.span_word_probs(texts, step.instruction, progress=False)
            scores = [2.0 * (1.0 - span_confidence(probs[i][1])) if i in probs else 0.0 for i in range(len(texts))]
        out = [max(a, min(max(b, 0.0), 1.0)) for a, b in zip(out, scores)]
    return out


def word_set(text: str) -> frozenset[str]:
    """The lower-cased words of a text, for overlap between texts."""
    return frozenset(w.lower() for w in _WORD.findall(text))


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard overlap of two word sets (0 when both are empty)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def select_uncertain(
    texts: Sequence[str], scores: Sequence[float], n: int, *, max_overlap: float = 0.5, seed: int = 0
) -> list[int]:
    """Positions of `n` texts to annotate next: down the ranking by uncertainty (ties in a
    seeded random order), skipping a text that overlaps more than `max_overlap` with one
    already chosen; if that leaves too few, the skipped ones fill up in ranking order."""
    if len(texts) != len(scores):
        from falconer_core.errors import ConfigError

        raise ConfigError(f"got {len(scores)} scores for {len(texts)} texts; pass one score per text")
    n = min(n, len(texts))
    tiebreak = list(range(len(texts)))
    random.Random(seed).shuffle(tiebreak)
    ranked = sorted(range(len(texts)), key=lambda i: (-scores[i], tiebreak[i]))
    words = {}
    chosen: list[int] = []
    skipped: list[int] = []
    for i in ranked:
        if len(chosen) == n:
            break
        words[i] = word_set(texts[i])
        if any(overlap(words[i], words[j]) > max_overlap for j in chosen):
            skipped.append(i)
        else:
            chosen.append(i)
    chosen += skipped[: n - len(chosen)]
    return chosen


__all__ = ["overlap", "select_uncertain", "uncertainty", "word_set"]
