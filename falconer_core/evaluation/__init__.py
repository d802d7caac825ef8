"""Evaluation: the metrics (`metrics`: word-level F1, exact spans, label accuracy/F1) and scoring
a model against an annotator step by step (`scoring`)."""

from falconer_core.evaluation.metrics import exact_span_prf, label_metrics, prf, word_f1
from falconer_core.evaluation.scoring import Evaluation, StepScore, evaluate_model, score_runner

__all__ = ["Evaluation", "StepScore", "evaluate_model", "exact_span_prf", "label_metrics", "prf", "score_runner", "word_f1"]
