"""Choosing which texts the annotator labels: a drawn sample, random or stratified by the
metamodel's zero-shot scores (`draw`), and active rounds that add the texts a re-tuned model is
least sure of (`active`)."""

from falconer_core.sampling.active import (
    ActiveSettings,
    batch_sizes,
    first_round_holdout,
    gate_cleared,
    learning_curve_row,
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

__all__ = [
    "SCORE_CHUNK",
    "ActiveSettings",
    "AnnotationSample",
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
