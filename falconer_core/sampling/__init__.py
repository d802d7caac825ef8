"""Choosing which texts the annotator labels: a drawn sample, random or stratified by the
metamodel's zero-shot scores (`draw`), the texts a re-tuned model is least sure of (`active`),
and the rounds an incubation annotates in, with the decisions between them (`rounds`)."""

from falconer_core.sampling.active import (
    ActiveSettings,
    next_batch,
    overlap,
    select_uncertain,
    uncertainty,
    with_batch,
    word_set,
)
from falconer_core.sampling.draw import (
    SCORE_CHUNK,
    AnnotationSample,
    SampleSummary,
    SamplingSettings,
    Signal,
    Stratum,
    sample_corpus,
    sample_for_annotation,
    sample_size,
)
from falconer_core.sampling.rounds import Rounds, batch_sizes, first_round_holdout, gate_cleared, learning_curve_row

__all__ = [
    "SCORE_CHUNK",
    "ActiveSettings",
    "AnnotationSample",
    "Rounds",
    "SampleSummary",
    "SamplingSettings",
    "Signal",
    "Stratum",
    "batch_sizes",
    "first_round_holdout",
    "gate_cleared",
    "learning_curve_row",
    "next_batch",
    "overlap",
    "sample_corpus",
    "sample_for_annotation",
    "sample_size",
    "select_uncertain",
    "uncertainty",
    "with_batch",
    "word_set",
]
