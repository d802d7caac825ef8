"""The promotion rule: every promoted version becomes `candidate`; it becomes `champion` (what
`execute` runs by default) only when it meets the task's quality gate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from falconer_core.errors import ConfigError


@dataclass(frozen=True)
class PromotionDecision:
    """What `Registry.promote` did and why."""

    model_name: str
    version: int
    champion: bool
    reasons: tuple[str, ...]
    previous_champion: int | None = None

    def __str__(self) -> str:
        verdict = "champion" if self.champion else "candidate only"
        return f"{self.model_name}/{self.version} -> {verdict}: " + "; ".join(self.reasons)


def check_gate(metrics: Mapping[str, float], gate: Mapping[str, float]) -> tuple[bool, list[str]]:
    """Whether every gated metric is present and at least its threshold, with one reason per
    metric (higher is better; gate a loss by logging its negative)."""
    reasons: list[str] = []
    passed = True
    for name, threshold in gate.items():
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigError(f"gate threshold for {name!r} must be a number, got {threshold!r}")
        value = metrics.get(name)
        if value is None:
            passed = False
            reasons.append(f"{name} missing (gate >= {threshold:g})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            passed = False
            reasons.append(f"{name} = {value!r} is not a number (gate >= {threshold:g})")
        elif value >= threshold:
            reasons.append(f"{name} = {value:.4g} >= {threshold:g}")
        else:
            passed = False
            reasons.append(f"{name} = {value:.4g} < {threshold:g}")
    if not gate:
        reasons.append("no gate: nothing to check")
    return passed, reasons
