"""Choose which texts of a corpus the annotator labels.

About 5% of the corpus, so the sample keeps the corpus's own distribution (paper, sec. 3.4),
bounded by a floor (small corpora still yield enough to train on) and a cap (annotation costs
money). Random draws are fine for span steps, but a label that holds for 1% of texts may get no
positive at all in a random sample; so, when the plan has label steps and a scorer (the
metamodel, zero-shot) is given, texts are bucketed by their score rank and drawn evenly from the
buckets, which over-represents likely positives without dropping anything (paper, Appendix B).

A stratified sample is not the corpus in miniature, so every sampled text records its inclusion
probability (`AnnotationSample.inclusion`): the share of its bucket that was drawn, combined over
the signals as if they drew independently (exact for one signal, an approximation when a later
signal skips texts an earlier one took), times the share of the corpus that was scored.
Evaluation weights each text by the inverse (`AnnotationSample.weights`), so figures measured on
a stratified sample still estimate the corpus's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, Hashable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from falconer_core.corpus import CorpusSnapshot
from falconer_core.errors import ConfigError, CorpusError
from falconer_core.metamodel.source import ModelSource, has_trained_head, open_metamodel
from falconer_core.plan import Condition, Plan, condition_score, render_condition
from falconer_core.types import Runner

log = logging.getLogger("falconer_core.sampling")
#: Texts scored per scorer call while stratifying, so memory stays bounded on a large pool.
SCORE_CHUNK = 1024


class SamplingSettings(BaseModel):
    """How many texts to annotate and how to pick them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(0.05, gt=0, le=1, description="Share of the corpus to sample.")
    floor: int = Field(100, ge=0, description="At least this many texts (or the whole corpus).")
    cap: int = Field(2000, ge=1, description="At most this many texts (annotation cost).")
    seed: int = Field(0, description="Same seed, same corpus, same scores: same sample.")
    score_pool: int | None = Field(
        None,
        ge=1,
        description="Score only a random pool of this many texts (None: all); keep it several "
        "times the sample size so there is something to stratify.",
    )
    quantiles: tuple[float, ...] = Field(
        (0.5, 0.8, 0.95),
        description="Cut points on the score rank; each bucket between them gets an equal share, "
        "so the top 5% of likely positives fill a quarter of the sample by default.",
    )

    @field_validator("quantiles")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < q < 1 for q in value) or list(value) != sorted(set(value)):
            raise ValueError("quantiles must be strictly increasing numbers between 0 and 1")
        return value

    @model_validator(mode="after")
    def _floor_below_cap(self) -> SamplingSettings:
        if self.floor > self.cap:
            raise ValueError(f"floor ({self.floor}) is above cap ({self.cap})")
        return self


class Stratum(BaseModel):
    """One score bucket of one signal: rank range, score range, size and how many were drawn."""

    lower_quantile: float
    upper_quantile: float
    min_score: float | None
    max_score: float | None
    size: int
    drawn: int


class Signal(BaseModel):
    """A zero-shot score the sample was stratified on: one label step, or the whole filter."""

    name: str = Field(description="The label step's name, or 'filter'.")
    description: str = Field(description="The step's instruction, or the rendered filter.")
    drawn: int
    strata: list[Stratum] = Field(description="Buckets from the highest scores down.")


class SampleSummary(BaseModel):
    """How the sample was chosen, for logs, run metadata and the UI."""

    method: Literal["random", "stratified"]
    reason: str = Field(description="Why this method.")
    corpus_size: int
    sample_size: int
    settings: SamplingSettings
    pool_size: int = Field(0, description="Texts scored by the scorer (0 when random).")
    signals: list[Signal] = Field(default_factory=list)
    random_fill: int = Field(0, description="Texts drawn at random after the strata ran out.")

    def describe(self) -> str:
        """A few readable lines."""
        lines = [
            f"{self.method} sample of {self.sample_size} from {self.corpus_size} texts "
            f"(fraction {self.settings.fraction}, floor {self.settings.floor}, cap "
            f"{self.settings.cap}, seed {self.settings.seed}): {self.reason}"
        ]
        if self.method == "stratified":
            lines.append(f"  scored pool: {self.pool_size} texts; random fill: {self.random_fill}")
        for signal in self.signals:
            lines.append(f"  {signal.name} ({signal.description}): {signal.drawn} drawn")
            for s in signal.strata:
                scores = f"{s.min_score:.3f}-{s.max_score:.3f}" if s.size else "empty"
                lines.append(
                    f"    ranks {s.lower_quantile:.0%}-{s.upper_quantile:.0%} (scores {scores}): "
                    f"{s.drawn} of {s.size}"
                )
        return "\n".join(lines)


class AnnotationSample(BaseModel):
    """The chosen texts, in corpus order, and how they were chosen."""

    ids: list[Any] = Field(description="Selected ids, in corpus order.")
    indices: list[int] = Field(description="Their positions in the corpus.")
    summary: SampleSummary
    inclusion: list[float] = Field(
        default_factory=list, description="P(each selected text is in the sample), aligned with `ids`."
    )

    def weights(self, ids: Collection[str] | None = None) -> dict[str, float]:
        """Text id -> 1 / inclusion probability, the weight estimates take it with (uniform for a
        random sample); only the texts in `ids` when given."""
        if len(self.inclusion) != len(self.ids):
            raise ConfigError("this sample has no inclusion probabilities (made by an older Falconer); sample again")
        wanted = None if ids is None else {str(i) for i in ids}
        return {str(i): 1.0 / p for i, p in zip(self.ids, self.inclusion) if wanted is None or str(i) in wanted}


def sample_size(corpus_size: int, fraction: float = 0.05, floor: int = 100, cap: int = 2000) -> int:
    """`fraction` of the corpus, raised to `floor`, lowered to `cap`, never above the corpus."""
    return min(corpus_size, max(floor, min(cap, round(fraction * corpus_size))))


def sample_corpus(
    corpus: CorpusSnapshot, plan: Plan, settings: SamplingSettings, scorer: ModelSource | None
) -> AnnotationSample:
    """The texts of a snapshotted corpus to annotate, stratified by `scorer`'s zero-shot label
    scores when it has a trained head (a checkpoint, or a tagging base such as Cuckoo), else at
    random: a random head scores noise, not worth a pass over the corpus. Only the ids are read
    for a random sample; texts only when they are scored. `scorer=None` samples at random (what
    an evaluation sample needs: the model being scored must not pick its own test texts)."""
    if scorer is None:
        return sample_for_annotation(corpus.ids(), plan, **settings.model_dump())
    informative = bool(plan.label_steps) and has_trained_head(scorer)
    if plan.label_steps and not informative:
        log.info("%s has an untrained head, so its zero-shot scores would be noise: sampling at random", scorer.path)
    return sample_for_annotation(
        corpus.ids(), plan, texts=corpus.texts() if informative else None,
        scorer=open_metamodel(scorer) if informative else None, **settings.model_dump(),
    )


def sample_for_annotation(
    ids: Sequence[Hashable],
    plan: Plan | None = None,
    *,
    texts: Sequence[str] | None = None,
    scorer: Runner | None = None,
    fraction: float = 0.05,
    floor: int = 100,
    cap: int = 2000,
    seed: int = 0,
    score_pool: int | None = None,
    quantiles: Sequence[float] = (0.5, 0.8, 0.95),
) -> AnnotationSample:
    """Pick the texts to annotate: stratified by zero-shot label scores when `plan` has label
    steps and `scorer` is given, random otherwise; deterministic for a given `seed`.

    `texts` is read only at the scored positions, so a lazy sequence over a large corpus works.
    """
    try:
        settings = SamplingSettings(
            fraction=fraction, floor=floor, cap=cap, seed=seed, score_pool=score_pool,
            quantiles=tuple(quantiles),
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid sampling settings: {problems}") from None
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise CorpusError("ids are not unique; each text needs its own id")
    corpus_size = len(ids)
    n = sample_size(corpus_size, settings.fraction, settings.floor, settings.cap)
    rng = random.Random(settings.seed)

    signals = _signals(plan) if plan is not None else []
    reason = _random_reason(plan, signals, scorer, n, corpus_size)
    if reason is not None:
        chosen = sorted(rng.sample(range(corpus_size), n))
        summary = SampleSummary(
            method="random", reason=reason, corpus_size=corpus_size, sample_size=n, settings=settings
        )
        return AnnotationSample(
            ids=[ids[i] for i in chosen], indices=chosen, summary=summary, inclusion=[n / corpus_size] * n if corpus_size else []
        )
    if texts is None:
        raise ConfigError("stratified sampling scores texts with the scorer: pass texts=...")
    if len(texts) != corpus_size:
        raise CorpusError(f"got {len(texts)} texts for {corpus_size} ids; pass one text per id")

    pool_size = corpus_size if settings.score_pool is None else min(settings.score_pool, corpus_size)
    if pool_size < corpus_size:
        pool = sorted(rng.sample(range(corpus_size), pool_size))
    else:
        pool = list(range(corpus_size))
    scores = _score(scorer, plan, signals, [texts[i] for i in pool])  # type: ignore[arg-type]
    taken, reports, missed = _stratify(signals, pool, scores, n, settings.quantiles, rng)

    fill = n - len(taken)
    if fill > 0:  # the pool ran out (score_pool below the sample size): top up at random
        rest = [i for i in range(corpus_size) if i not in taken]
        taken.update(rng.sample(rest, fill))
    chosen = sorted(taken)
    if fill > 0:  # the whole (random) pool was taken, the rest drawn at random: every text alike
        inclusion = [n / corpus_size] * n
    else:
        inclusion = [(1.0 - missed[i]) * pool_size / corpus_size for i in chosen]
    summary = SampleSummary(
        method="stratified",
        reason=f"zero-shot scores of {len(signals)} signal(s), buckets drawn evenly",
        corpus_size=corpus_size, sample_size=n, settings=settings, pool_size=pool_size,
        signals=reports, random_fill=max(fill, 0),
    )
    return AnnotationSample(ids=[ids[i] for i in chosen], indices=chosen, summary=summary, inclusion=inclusion)


def _stratify(
    signals: list[tuple[str, str]],
    pool: list[int],
    scores: dict[str, list[float]],
    n: int,
    quantiles: tuple[float, ...],
    rng: random.Random,
) -> tuple[set[int], list[Signal], dict[int, float]]:
    """Split the budget evenly over the signals; for each, rank the pool by score, cut it into
    buckets at the quantiles and draw evenly from them, skipping texts already taken. Also
    returns, per pooled text, the chance it was missed by every signal (for `inclusion`)."""
    taken: set[int] = set()
    reports: list[Signal] = []
    missed = dict.fromkeys(pool, 1.0)
    budgets = [n // len(signals) + (1 if k < n % len(signals) else 0) for k in range(len(signals))]
    for (name, description), budget in zip(signals, budgets):
        score_of = dict(zip(pool, scores[name]))
        ranked = sorted(pool, key=lambda i: (score_of[i], i))
        buckets, bounds = _buckets(ranked, quantiles)
        chosen, counts = _draw_evenly(buckets, budget, rng, taken)
        for bucket, drawn in zip(buckets, counts):
            available = sum(1 for i in bucket if i not in taken)
            for i in bucket:
                missed[i] *= 1.0 - (drawn / available if available else 0.0)
        taken.update(chosen)
        strata = [
            Stratum(
                lower_quantile=lo, upper_quantile=hi,
                min_score=min((score_of[i] for i in b), default=None),
                max_score=max((score_of[i] for i in b), default=None),
                size=len(b), drawn=c,
            )
            for b, (lo, hi), c in zip(buckets, bounds, counts)
        ]
        reports.append(Signal(name=name, description=description, drawn=len(chosen), strata=strata))
    return taken, reports, missed


def _signals(plan: Plan) -> list[tuple[str, str]]:
    """What to stratify on: each label step that has one answer per text, plus the filter when
    it combines steps (a conjunction of two common labels can still be rare)."""
    signals = [(s.name, s.instruction) for s in plan.label_steps if s.for_each is None]
    if plan.filter is not None and not isinstance(plan.filter, str):
        signals.append(("filter", render_condition(plan.filter)))
    return signals


def _random_reason(
    plan: Plan | None, signals: list[tuple[str, str]], scorer: Runner | None, n: int, corpus_size: int
) -> str | None:
    """Why the sample is random, or None when it can be stratified."""
    if n >= corpus_size:
        return "the sample is the whole corpus"
    if plan is None:
        return "no plan given"
    if not signals:
        return "the plan has no per-text label steps; span steps are sampled at random"
    if scorer is None:
        return "no scorer given to rank texts by their label scores"
    return None


def _score(
    scorer: Runner, plan: Plan, signals: list[tuple[str, str]], texts: list[str]
) -> dict[str, list[float]]:
    """P(label holds) per signal and text: one scorer call per label step; the filter's score
    is combined from its steps' (min for and, max for or, 1-x for not)."""
    scores: dict[str, list[float]] = {}
    for step in plan.label_steps:
        if step.for_each is None:
            scores[step.name] = []
            for start in range(0, len(texts), SCORE_CHUNK):  # bounded encodings in memory at once
                results = scorer.get_label(texts[start : start + SCORE_CHUNK], step.instruction)
                scores[step.name] += [float(r.confidence) if r.value else 1.0 - float(r.confidence) for r in results]
    if any(name == "filter" for name, _ in signals):
        condition: Condition = plan.filter  # type: ignore[assignment]
        scores["filter"] = [
            condition_score(condition, {k: v[j] for k, v in scores.items()}) for j in range(len(texts))
        ]
    return scores


def _buckets(
    ranked: list[int], quantiles: tuple[float, ...]
) -> tuple[list[list[int]], list[tuple[float, float]]]:
    """Split indices ranked by ascending score at the quantile cuts; highest bucket first."""
    cuts = [0.0, *quantiles, 1.0]
    edges = [round(q * len(ranked)) for q in cuts]
    buckets = [ranked[edges[k]: edges[k + 1]] for k in range(len(cuts) - 1)]
    bounds = [(cuts[k], cuts[k + 1]) for k in range(len(cuts) - 1)]
    return buckets[::-1], bounds[::-1]


def _draw_evenly(
    buckets: list[list[int]], k: int, rng: random.Random, taken: set[int]
) -> tuple[list[int], list[int]]:
    """Draw `k` untaken indices, an equal share per bucket; a bucket too small gives all it has
    and the rest is shared among the others (leftover units go to the higher buckets)."""
    available = [[i for i in b if i not in taken] for b in buckets]
    for a in available:
        rng.shuffle(a)
    counts = [0] * len(buckets)
    remaining = k
    while remaining > 0:
        open_ = [j for j in range(len(buckets)) if counts[j] < len(available[j])]
        if not open_:
            break
        share, extra = divmod(remaining, len(open_))
        for rank, j in enumerate(open_):
            got = min(share + (1 if rank < extra else 0), len(available[j]) - counts[j])
            counts[j] += got
            remaining -= got
    return [i for j, a in enumerate(available) for i in a[: counts[j]]], counts


__all__ = [
    "AnnotationSample",
    "SampleSummary",
    "SamplingSettings",
    "Signal",
    "Stratum",
    "sample_corpus",
    "sample_for_annotation",
    "sample_size",
]
