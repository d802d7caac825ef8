"""Drift: does the corpus a model now runs on still look like the texts it was gated on?

`reference` records, at registration, the proxy's confidences and outcomes on the version's
held-out texts; `signals` compares a corpus sample's with them, without LLM calls.
"""

from falconer_core.drift.reference import (
    Confidences,
    DriftReference,
    DriftSettings,
    StepReference,
    build_reference,
    measure_confidences,
)
from falconer_core.drift.signals import DriftReport, StepDrift, drift_report, expected_agreement

__all__ = [
    "Confidences",
    "DriftReference",
    "DriftReport",
    "DriftSettings",
    "StepDrift",
    "StepReference",
    "build_reference",
    "drift_report",
    "expected_agreement",
    "measure_confidences",
]
