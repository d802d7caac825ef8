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
from collections.abc import Collection, Sequence

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.corpus import CorpusSnapshot
from falconer_core.corpus.loading import ID, TEXT
from falconer_core.metamodel.source import ModelSource, open_metamodel
from falconer_core.plan import Plan
from falconer_core.sampling.draw import AnnotationSample

_WORD = re.compile(r"\w+")


class ActiveSettings(BaseModel):
    """Annotating in rounds: a random first batch, then batches the metamodel is least sure of."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(1, ge=1, description="Most annotation rounds; 1 annotates the whole sample at once.")
    first_share: float = Field(
        0.5, gt=0, le=1, description="Share of the annotation budget drawn (as `sampling` says) in the first round; "
        "the held-out texts all come from it.",
    )
    pool: int = Field(
        5000, ge=1, description="Unannotated texts (a random draw) the metamodel scores to choose each later batch.",
    )
    max_overlap: float = Field(
        0.5, ge=0, le=1, description="A text whose word overlap (Jaccard) with one already in the batch is above "
        "this is passed over, so a batch is not a pile of near-copies.",
    )
    seed: int = Field(0, description="Seeds the pool and the tie-breaks.")
    stop_at_gate: bool = Field(
        True, description="Stop once the held-out score clears the gate with its interval. False spends the whole "
        "budget: a drift re-tune aims to recover the agreement it lost, not just to pass the floor.",
    )


def with_batch(sample: AnnotationSample, corpus_ids: Sequence[str], batch: Sequence[str]) -> AnnotationSample:
    """`sample` grown by the actively chosen `batch`, in corpus order. A chosen text was not
    drawn, so it has no inclusion probability; it is recorded as 1.0 and never held out, so no
    estimate ever weights it."""
    position = {str(i): k for k, i in enumerate(corpus_ids)}
    rows = list(zip(sample.indices, sample.ids, sample.inclusion))
    rows += [(position[str(i)], corpus_ids[position[str(i)]], 1.0) for i in batch]
    rows.sort()
    return AnnotationSample(
        ids=[r[1] for r in rows], indices=[r[0] for r in rows], inclusion=[r[2] for r in rows],
        summary=sample.summary.model_copy(update={"sample_size": len(rows)}),
    )


def next_batch(
    corpus: CorpusSnapshot, plan: Plan, model: ModelSource, annotated_ids: Collection[str], n: int,
    settings: ActiveSettings, round_: int = 1,
) -> list[str]:
    """Ids of the `n` unannotated texts to annotate next: a random pool of them scored by
    `model`'s uncertainty, the batch chosen by `select_uncertain`."""
    taken = {str(i) for i in annotated_ids}
    ids = [i for i in corpus.ids() if str(i) not in taken]
    if len(ids) > settings.pool:
        ids = [ids[k] for k in sorted(random.Random(settings.seed + round_).sample(range(len(ids)), settings.pool))]
    if not ids or n <= 0:
        return []
    rows = corpus.rows_by_id(ids)
    texts = [str(t) for t in rows[TEXT].tolist()]
    scores = uncertainty(open_metamodel(model), plan, texts)
    chosen = select_uncertain(texts, scores, n, max_overlap=settings.max_overlap, seed=settings.seed + round_)
    return [str(rows[ID].iloc[i]) for i in chosen]


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


__all__ = [
    "ActiveSettings",
    "next_batch",
    "overlap",
    "select_uncertain",
    "uncertainty",
    "with_batch",
    "word_set",
]
