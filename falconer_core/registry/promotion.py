"""The promotion rule, per task. A task is a plan (its hash); each task has its own champion,
the alias `champion-<plan_hash>` (what the nightly deployment of that task runs), and its own
`candidate-<plan_hash>` (the newest version tried on it). A version becomes its task's champion
only when it clears the absolute floor (`check_gate`, e.g. mean_f1 >= 0.5) *and*, if the task
already has a champion, it is not worse than that champion beyond the noise on the same
held-out texts (`evaluation.comparison`, a paired bootstrap)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from falconer_core.errors import ConfigError
from falconer_core.registry.refs import CANDIDATE, CHAMPION

if TYPE_CHECKING:
    from falconer_core.evaluation.comparison import Comparison


@dataclass(frozen=True)
class PromotionDecision:
    """What `Registry.promote` did and why."""

    model_name: str
    version: int
    champion: bool
    reasons: tuple[str, ...]
    previous_champion: int | None = None
    task: str | None = None

    def __str__(self) -> str:
        verdict = f"champion of task {self.task}" if self.champion else "candidate only"
        return f"{self.model_name}/{self.version} -> {verdict}: " + "; ".join(self.reasons)


def champion_alias(plan_hash: str) -> str:
    """The alias of a task's champion."""
    return f"{CHAMPION}-{plan_hash}"


def candidate_alias(plan_hash: str) -> str:
    """The alias of a task's newest candidate."""
    return f"{CANDIDATE}-{plan_hash}"


def task_of_alias(alias: str) -> str | None:
    """The plan hash a champion alias names, else None."""
    prefix = f"{CHAMPION}-"
    return alias[len(prefix):] if alias.startswith(prefix) else None


def against_champion(
    model_name: str, version: int, champion: int | None, comparison: Comparison | None
) -> tuple[bool, str]:
    """The relative gate: whether `version` may replace its task's `champion`, and why. A
    missing or stale comparison never replaces a champion."""
    if champion is None:
        return True, "no champion for this task yet"
    if champion == version:
        return True, "already the champion of this task"
    current = f"{model_name}/{champion}"
    if comparison is None:
        return False, f"no paired comparison with the task's champion {current}, so it stays champion"
    if comparison.incumbent != current:
        return False, (f"compared against {comparison.incumbent}, but the task's champion is now {current}; "
                       "run again to compare against it")
    return not comparison.worse, comparison.describe()


def check_gate(metrics: Mapping[str, float], gate: Mapping[str, float]) -> tuple[bool, list[str]]:
    """Whether every gated metric is present and at least its threshold, with one reason per
    metric (higher is better; gate a loss by logging its negative)."""
    reasons: list[str] = []
    passed = True
    for name, threshold in gate.items():
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigError(f"gate threshold for {name!r} must be a number, got {threshold!r}")
        value = metrics.get(name)
        interval = _interval(metrics, name)
        if value is None:
            passed = False
            reasons.append(f"{name} missing (gate >= {threshold:g})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            passed = False
            reasons.append(f"{name} = {value!r} is not a number (gate >= {threshold:g})")
        elif value >= threshold:
            reasons.append(f"{name} = {value:.4g}{interval} >= {threshold:g}")
        else:
            passed = False
            reasons.append(f"{name} = {value:.4g}{interval} < {threshold:g}")
    if not gate:
        reasons.append("no gate: nothing to check")
    return passed, reasons


def _interval(metrics: Mapping[str, float], name: str) -> str:
    lo, hi = metrics.get(f"{name}_lo"), metrics.get(f"{name}_hi")
    return f" [{lo:.4g}, {hi:.4g}]" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else ""
