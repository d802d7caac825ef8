"""Sampling for annotation: size rules, determinism, and stratification that finds rare positives."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from falconer_core.errors import ConfigError, CorpusError
from falconer_core.plan import Plan
from falconer_core.sampling import SamplingSettings, sample_for_annotation, sample_size
from falconer_core.types import Instructions, LabelResult, Span, per_text_instructions

N = 4000
RARE_SHARE = 0.02


def _corpus(n: int = N, seed: int = 7) -> list[str]:
    """About 2% of texts mention a rare topic ("quasar"); a few mention "comet"."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        r = rng.random()
        topic = "quasar" if r < RARE_SHARE else ("comet" if r < 0.1 else "weather")
        texts.append(f"note {i} about the {topic}")
    return texts


class NoisyScorer:
    """A zero-shot scorer that is informative but far from perfect: positives score around 0.65,
    negatives around 0.35, with wide noise, so plenty of negatives outrank some positives."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, Instructions]] = []

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        self.calls.append((len(texts), instruction))
        results = []
        for text, ask in zip(texts, per_text_instructions(texts, instruction)):
            keyword = ask.split()[-1].rstrip("?")
            noise = random.Random(f"{text}|{ask}").gauss(0, 0.15)
            p = min(1.0, max(0.0, (0.65 if keyword in text else 0.35) + noise))
            results.append(LabelResult(p >= 0.5, p if p >= 0.5 else 1 - p))
        return results

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        raise AssertionError("sampling never extracts spans")


QUASAR_PLAN = Plan.from_dict(
    {
        "steps": [
            {"name": "is_quasar", "op": "label", "instruction": "Is this about a quasar?"},
            {"name": "detail", "op": "span", "instruction": "Extract the detail"},
        ],
        "filter": "is_quasar",
    }
)
SPAN_PLAN = Plan.from_dict({"steps": [{"name": "detail", "op": "span", "instruction": "Extract the detail"}]})


def _rare_share(texts: list[str], indices: list[int]) -> float:
    return sum("quasar" in texts[i] for i in indices) / len(indices)


@pytest.mark.parametrize(
    ("corpus", "fraction", "floor", "cap", "expected"),
    [(4000, 0.05, 100, 2000, 200), (1000, 0.05, 100, 2000, 100), (80, 0.05, 100, 2000, 80),
     (1_000_000, 0.05, 100, 2000, 2000), (10_000, 0.1, 0, 5000, 1000), (0, 0.05, 100, 2000, 0)],
)
def test_sample_size_applies_fraction_floor_and_cap(corpus, fraction, floor, cap, expected) -> None:
    assert sample_size(corpus, fraction, floor, cap) == expected


def test_random_sample_is_deterministic_sorted_and_sized() -> None:
    ids = [f"doc{i}" for i in range(N)]
    first = sample_for_annotation(ids, SPAN_PLAN, seed=3)
    again = sample_for_annotation(ids, SPAN_PLAN, seed=3)
    other = sample_for_annotation(ids, SPAN_PLAN, seed=4)
    assert first == again and first.ids != other.ids
    assert len(first.ids) == 200 and first.indices == sorted(first.indices)
    assert first.ids == [ids[i] for i in first.indices]
    assert first.summary.method == "random" and "span steps are sampled at random" in first.summary.reason


def test_floor_and_cap() -> None:
    assert len(sample_for_annotation(range(500), floor=60).ids) == 60
    assert len(sample_for_annotation(range(100_000), cap=300).ids) == 300
    assert len(sample_for_annotation(range(30), floor=60).ids) == 30
    assert sample_for_annotation(range(30), floor=60).summary.reason == "the sample is the whole corpus"


def test_stratified_sample_is_deterministic() -> None:
    texts = _corpus()
    runs = [sample_for_annotation(range(N), QUASAR_PLAN, texts=texts, scorer=NoisyScorer(), seed=11) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0].summary.method == "stratified"
    assert runs[0].indices == sorted(runs[0].indices) and len(set(runs[0].indices)) == 200


def test_stratification_raises_the_share_of_rare_positives() -> None:
    texts = _corpus()
    seeds = range(5)
    random_share = sum(_rare_share(texts, sample_for_annotation(range(N), QUASAR_PLAN, seed=s).indices) for s in seeds)
    stratified_share = sum(
        _rare_share(texts, sample_for_annotation(range(N), QUASAR_PLAN, texts=texts, scorer=NoisyScorer(), seed=s).indices)
        for s in seeds
    )
    random_share /= len(seeds)
    stratified_share /= len(seeds)
    assert random_share < 0.04  # about the corpus's 2%
    assert stratified_share > 3 * random_share


def test_each_bucket_gets_an_equal_share() -> None:
    sample = sample_for_annotation(range(N), QUASAR_PLAN, texts=_corpus(), scorer=NoisyScorer(), seed=0)
    (signal,) = sample.summary.signals
    assert signal.name == "is_quasar" and signal.drawn == 200
    assert [s.drawn for s in signal.strata] == [50, 50, 50, 50]
    assert [(s.lower_quantile, s.upper_quantile) for s in signal.strata] == [
        (0.95, 1.0), (0.8, 0.95), (0.5, 0.8), (0.0, 0.5)]
    assert [s.size for s in signal.strata] == [200, 600, 1200, 2000]
    assert signal.strata[0].min_score >= signal.strata[1].max_score
    assert "ranks 95%-100%" in sample.summary.describe()


def test_scorer_runs_once_per_label_step_on_the_pool_only() -> None:
    scorer = NoisyScorer()
    sample = sample_for_annotation(range(N), QUASAR_PLAN, texts=_corpus(), scorer=scorer, score_pool=1000, seed=2)
    assert scorer.calls == [(1000, "Is this about a quasar?")]
    assert sample.summary.pool_size == 1000 and len(sample.ids) == 200
    assert sample.summary.random_fill == 0


def test_small_pool_is_topped_up_at_random() -> None:
    sample = sample_for_annotation(range(N), QUASAR_PLAN, texts=_corpus(), scorer=NoisyScorer(), score_pool=120, seed=2)
    assert len(sample.ids) == 200 and sample.summary.random_fill == 80


def test_compound_filter_is_a_signal_and_per_span_labels_are_not_scored() -> None:
    plan = Plan.from_dict(
        {
            "steps": [
                {"name": "is_quasar", "op": "label", "instruction": "Is this about a quasar?"},
                {"name": "is_comet", "op": "label", "instruction": "Is this about a comet?"},
                {"name": "detail", "op": "span", "instruction": "Extract the detail"},
                {"name": "odd", "op": "label", "instruction": "Is {detail} odd?", "for_each": "detail"},
            ],
            "filter": {"or": ["is_quasar", "is_comet"]},
        }
    )
    scorer = NoisyScorer()
    sample = sample_for_annotation(range(N), plan, texts=_corpus(), scorer=scorer, seed=1)
    from falconer_core.sampling import SCORE_CHUNK

    assert list(dict.fromkeys(ask for _, ask in scorer.calls)) == ["Is this about a quasar?", "Is this about a comet?"]
    assert all(n <= SCORE_CHUNK for n, _ in scorer.calls)  # scored in bounded chunks
    assert sum(n for n, ask in scorer.calls if ask == "Is this about a comet?") == N
    assert [s.name for s in sample.summary.signals] == ["is_quasar", "is_comet", "filter"]
    assert sample.summary.signals[2].description == "is_quasar OR is_comet"
    assert sum(s.drawn for s in sample.summary.signals) == 200 == len(set(sample.indices))


def test_without_scorer_or_plan_the_sample_is_random() -> None:
    assert "no scorer" in sample_for_annotation(range(N), QUASAR_PLAN, texts=_corpus()).summary.reason
    assert sample_for_annotation(range(N)).summary.reason == "no plan given"


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="fraction"):
        sample_for_annotation(range(10), fraction=0)
    with pytest.raises(ConfigError, match="above cap"):
        sample_for_annotation(range(10), floor=10, cap=5)
    with pytest.raises(ConfigError, match="quantiles"):
        sample_for_annotation(range(10), quantiles=(0.8, 0.5))
    with pytest.raises(ConfigError, match="pass texts"):
        sample_for_annotation(range(N), QUASAR_PLAN, scorer=NoisyScorer())
    with pytest.raises(CorpusError, match="not unique"):
        sample_for_annotation(["a", "a"])
    with pytest.raises(CorpusError, match="one text per id"):
        sample_for_annotation(range(N), QUASAR_PLAN, texts=["x"], scorer=NoisyScorer())


def test_settings_defaults_match_the_paper() -> None:
    settings = SamplingSettings()
    assert settings.fraction == 0.05 and settings.floor <= settings.cap
