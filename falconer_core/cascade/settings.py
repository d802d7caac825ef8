"""What a cascade run is asked for: a quality target relative to the LLM, the failure
probability allowed, the LLM and how many texts it may see."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.errors import ConfigError
from falconer_core.llm.choice import LLMChoice

LabelMetric = Literal["accuracy", "precision", "recall"]
LABEL_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall")
SPAN_METRIC = "span_f1"
#: Calibration texts drawn when `calibration_size` is not set (fewer on a smaller corpus).
DEFAULT_CALIBRATION = 1000


def parse_targets(value: Any) -> dict[str, float]:
    """`"accuracy=0.95"`, `"precision=0.9,span_f1=0.8"` or a mapping, as {metric: target}."""
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, number = item.partition("=")
            if not sep:
                raise ConfigError(f"cascade target {item!r} is not METRIC=VALUE, e.g. accuracy=0.95")
            pairs[name.strip()] = number.strip()
        value = pairs
    if not isinstance(value, dict):
        raise ConfigError(f"cascade targets must be METRIC=VALUE pairs, got {value!r}")
    targets: dict[str, float] = {}
    for name, number in value.items():
        if name not in (*LABEL_METRICS, SPAN_METRIC):
            raise ConfigError(f"unknown cascade metric {name!r}; use one of {[*LABEL_METRICS, SPAN_METRIC]}")
        try:
            targets[name] = float(number)
        except (TypeError, ValueError):
            raise ConfigError(f"cascade target {name}={number!r} is not a number") from None
        if not 0.0 < targets[name] < 1.0:
            raise ConfigError(f"cascade target {name}={targets[name]} must lie strictly between 0 and 1")
    if not [m for m in targets if m in LABEL_METRICS] and SPAN_METRIC not in targets:
        raise ConfigError("a cascade needs a target, e.g. accuracy=0.95")
    if len([m for m in targets if m in LABEL_METRICS]) > 1:
        raise ConfigError(f"give one label target among {LABEL_METRICS}, not {sorted(targets)}")
    return targets


class CascadeSettings(BaseModel):
    """Execute with the proxy where it is sure and the LLM elsewhere, so that the outputs agree
    with what the LLM would have answered on every text at the target, with probability at
    least 1 - delta."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: dict[str, float] = Field(
        description="Quality relative to the LLM: one of accuracy/precision/recall for the label steps "
        "(e.g. accuracy=0.95), and optionally span_f1 (mean word F1 per text) for the span steps.",
    )
    delta: float = Field(0.05, gt=0, lt=1, description="Allowed probability that the target is missed.")
    llm_budget: int | None = Field(
        None, ge=0, description="Most texts the LLM may see, calibration included (default: no limit).",
    )
    llm: AnnotatorChoice = Field(
        AnnotatorChoice(name="openai"), description="The LLM the proxy defers to: 'openai' (OPENAI_BASE_URL/KEY) or 'local'.",
    )
    calibration_size: int | None = Field(
        None, ge=10, description=f"Random texts the LLM labels to set the thresholds (default: {DEFAULT_CALIBRATION}, "
        "or the whole corpus when smaller).",
    )
    audit_size: int = Field(
        0, ge=0, description="After the run, a fresh random sample of this many texts the LLM labels to "
        "report the agreement achieved, with an interval (0: no audit).",
    )
    seed: int = Field(0, description="Seeds the calibration and audit samples.")

    @field_validator("target", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> dict[str, float]:
        return parse_targets(value)

    @model_validator(mode="after")
    def _check_llm(self) -> CascadeSettings:
        if self.llm.name == "gold":
            raise ConfigError("a cascade defers to an LLM: use llm='openai' or llm='local', not gold labels")
        return self

    @property
    def deferred_llm(self) -> LLMChoice:
        """The LLM the proxy defers to (never None: gold labels are refused above)."""
        return self.llm.llm

    @property
    def label_metric(self) -> str | None:
        """The label target's metric, or None when only spans are targeted."""
        return next((m for m in self.target if m in LABEL_METRICS), None)

    def calibration_for(self, n_texts: int) -> int:
        """How many texts calibrate the thresholds on a corpus of `n_texts`."""
        return min(n_texts, self.calibration_size or DEFAULT_CALIBRATION)

    def check_llm(self) -> None:
        """Fail before any work when no LLM is configured for the cascade to defer to."""
        if self.llm.name == "local":
            return
        settings = self.deferred_llm.llm_settings()
        if not (settings.base_url or settings.api_key):
            raise ConfigError(
                "a cascade needs an LLM to defer to, and none is configured: set OPENAI_BASE_URL (and "
                "OPENAI_API_KEY) for an OpenAI-compatible endpoint, or use the embedded one with --llm local"
            )

    def identity(self) -> dict[str, Any]:
        """What determines a cascade run's rows (part of its run id and shard work keys)."""
        return {
            "target": dict(sorted(self.target.items())), "delta": self.delta, "llm_budget": self.llm_budget,
            "llm": self.deferred_llm.cache_identity(), "calibration": self.calibration_size, "seed": self.seed,
        }


__all__ = ["DEFAULT_CALIBRATION", "LABEL_METRICS", "SPAN_METRIC", "CascadeSettings", "LabelMetric", "parse_targets"]
