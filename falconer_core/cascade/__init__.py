"""Cascades: the fine-tuned proxy answers the texts it is sure of, the LLM the rest, so the
outputs meet a quality target relative to the LLM with probability 1 - delta.

`CascadeSettings` states the target and budget; `calibrate_corpus` sets per-step thresholds
from a uniform calibration sample with finite-sample bounds (`thresholds`, `bounds`);
`shard_cascades` splits the budget over shards; `ShardCascade.route` sends each shard's
uncertain texts to the LLM (`ShardCounts` says what it routed); `audit_agreement` checks a
finished run on a fresh sample; `CascadeReport` is what the run keeps.
"""

from falconer_core.cascade.audit import AuditResult, audit_agreement, audit_positions
from falconer_core.cascade.bounds import bernstein_upper, binomial_interval, binomial_lower, binomial_upper
from falconer_core.cascade.budget import budget_left, cascade_work_keys, shard_cascades
from falconer_core.cascade.calibration import (
    FIRST_STAGE,
    MIN_CALIBRATION,
    Calibration,
    calibrate,
    calibrate_corpus,
    calibration_positions,
    calibration_stages,
)
from falconer_core.cascade.report import CascadeReport
from falconer_core.cascade.routing import LLM, PROXY, RoutedShard, ShardCascade
from falconer_core.cascade.scores import ScoredProxy, cascaded_steps, p_true, step_score, text_f1
from falconer_core.cascade.settings import (
    DEFAULT_CALIBRATION,
    LABEL_METRICS,
    SPAN_METRIC,
    CascadeSettings,
    parse_targets,
)
from falconer_core.cascade.thresholds import (
    LEVELS,
    ROUTE_ALL,
    StepThreshold,
    kept_answers,
    label_threshold,
    span_threshold,
)
from falconer_core.execution.counts import ShardCounts

__all__ = [
    "DEFAULT_CALIBRATION",
    "FIRST_STAGE",
    "LABEL_METRICS",
    "LEVELS",
    "LLM",
    "MIN_CALIBRATION",
    "PROXY",
    "ROUTE_ALL",
    "SPAN_METRIC",
    "AuditResult",
    "Calibration",
    "CascadeReport",
    "CascadeSettings",
    "RoutedShard",
    "ScoredProxy",
    "ShardCascade",
    "ShardCounts",
    "StepThreshold",
    "audit_agreement",
    "audit_positions",
    "bernstein_upper",
    "binomial_interval",
    "binomial_lower",
    "binomial_upper",
    "budget_left",
    "calibrate",
    "calibrate_corpus",
    "calibration_positions",
    "calibration_stages",
    "cascade_work_keys",
    "cascaded_steps",
    "kept_answers",
    "label_threshold",
    "p_true",
    "parse_targets",
    "shard_cascades",
    "span_threshold",
    "step_score",
    "text_f1",
]
