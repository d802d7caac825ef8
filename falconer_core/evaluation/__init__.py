"""Evaluation: the metrics (`metrics`: word-level F1, exact spans, label accuracy/F1), scoring a
model against an annotator step by step and end to end with weighted bootstrap intervals
(`scoring`, `endtoend`, `bootstrap`), and the paired comparison of two models (`comparison`)."""

from falconer_core.evaluation.bootstrap import BootstrapSettings
from falconer_core.evaluation.comparison import Comparison, compare
from falconer_core.evaluation.metrics import exact_span_prf, label_metrics, prf, word_f1
from falconer_core.evaluation.scoring import Evaluation, StepScore, TextCounts, evaluate_model, score_texts

__all__ = [
    "BootstrapSettings",
    "Comparison",
    "Evaluation",
    "StepScore",
    "TextCounts",
    "compare",
    "evaluate_model",
    "exact_span_prf",
    "label_metrics",
    "prf",
    "score_texts",
    "word_f1",
]
