"""Drift signals: a corpus sample's proxy confidences against the version's reference, without
LLM calls.

Per top-level step: the share judged true (label steps), the share in the uncertain band, and a
two-sample Kolmogorov-Smirnov test of the confidences against the reference's. Drift is
declared when any step's KS p-value falls below alpha / steps (Bonferroni), so an unchanged
corpus — texts drawn like the held-out ones — raises a false alarm at most `alpha` (5%) of the
time, whatever the number of steps; ties (confidences at 1.0) only make the test more
conservative.

Agreement with the LLM is estimated from the calibrated confidences (confidence-based
performance estimation, as NannyML's CBPE): a label's expected accuracy is the mean of
max(p, 1 - p); a span step's the mean per-text span confidence. Each is rescaled by the
reference's observed agreement over its own estimate, which corrects a proxy that is over- or
under-confident by a constant factor; it cannot see a proxy that is confidently wrong on the
new texts, which is why a fired signal calls for an audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from falconer_core.drift.reference import Confidences, DriftReference, DriftSettings

NO_DRIFT, DRIFT = "no drift", "drift detected"


def expected_agreement(op: str, confidences: Sequence[float]) -> float:
    """The agreement calibrated confidences predict: label mean max(p, 1 - p), span mean confidence."""
    if not confidences:
        return 0.0
    if op == "label":
        return sum(max(p, 1.0 - p) for p in confidences) / len(confidences)
    return sum(confidences) / len(confidences)


def step_figures(op: str, confidences: Sequence[float], settings: DriftSettings) -> dict[str, Any]:
    """Share judged true (labels) and share in the uncertain band."""
    n = len(confidences)
    return {
        "true_share": (sum(p >= 0.5 for p in confidences) / n if n else 0.0) if op == "label" else None,
        "band_share": sum(settings.uncertain(op, c) for c in confidences) / n if n else 0.0,
    }


class StepDrift(BaseModel):
    """One step's signals on the sample beside the reference's figures."""

    step: str
    op: Literal["label", "span"]
    n_reference: int
    n_sample: int
    true_share_reference: float | None = None
    true_share: float | None = None
    band_share_reference: float
    band_share: float
    ks: float | None = Field(None, description="KS statistic of the sample's confidences against the reference's.")
    p_value: float | None = None
    shifted: bool = Field(description="p_value below the report's per-step threshold.")
    agreement_reference: float | None = Field(None, description="Observed held-out agreement with the annotator.")
    agreement_estimate: float = Field(description="Estimated agreement with the annotator on the sample.")


class DriftReport(BaseModel):
    """Does the sample look like the reference? Per-step figures and one verdict."""

    n_texts: int
    alpha: float
    threshold: float = Field(description="Per-step p-value threshold: alpha / steps tested.")
    pass_rate_reference: float
    pass_rate: float
    steps: list[StepDrift]
    drift: bool

    @property
    def verdict(self) -> str:
        """'drift detected' or 'no drift': words a user can grep."""
        return DRIFT if self.drift else NO_DRIFT

    def rows(self) -> list[dict[str, Any]]:
        """One table row per step."""
        def fmt(x: float | None, digits: int = 3) -> str:
            return "-" if x is None else f"{x:.{digits}f}"

        return [{
            "step": s.step, "op": s.op, "texts (ref/sample)": f"{s.n_reference}/{s.n_sample}",
            "true share (ref -> now)": f"{fmt(s.true_share_reference)} -> {fmt(s.true_share)}",
            "uncertain (ref -> now)": f"{fmt(s.band_share_reference)} -> {fmt(s.band_share)}",
            "KS": fmt(s.ks), "p": "-" if s.p_value is None else f"{s.p_value:.2g}",
            "agreement (ref -> est.)": f"{fmt(s.agreement_reference)} -> {fmt(s.agreement_estimate)}",
            "shifted": "yes" if s.shifted else "no",
        } for s in self.steps]


def estimate_agreement(op: str, confidences: Sequence[float], observed: float | None, reference_expected: float) -> float:
    """The sample's expected agreement, rescaled by the reference's observed over expected."""
    estimate = expected_agreement(op, confidences)
    if observed is not None and reference_expected > 0:
        estimate *= observed / reference_expected
    return min(1.0, max(0.0, estimate))


def drift_report(reference: DriftReference, sample: Confidences, settings: DriftSettings | None = None) -> DriftReport:
    """Compare `sample` (the proxy's confidences on a corpus sample) with `reference`."""
    from scipy.stats import ks_2samp

    settings = settings or reference.settings
    tested = [s for s in reference.steps if s.confidences and sample.steps.get(s.step)]
    threshold = settings.alpha / max(1, len(tested))
    steps = []
    for ref in reference.steps:
        now = sample.steps.get(ref.step, [])
        figures = step_figures(ref.op, now, settings)
        ks = p = None
        if ref.confidences and now:
            # at the reference's resolution (kept to 6 decimals): equal confidences stay ties
            test = ks_2samp(ref.confidences, [round(c, 6) for c in now])
            ks, p = float(test.statistic), float(test.pvalue)
        steps.append(StepDrift(
            step=ref.step, op=ref.op, n_reference=len(ref.confidences), n_sample=len(now),
            true_share_reference=ref.true_share, true_share=figures["true_share"],
            band_share_reference=ref.band_share, band_share=figures["band_share"], ks=ks, p_value=p,
            shifted=p is not None and p < threshold, agreement_reference=ref.agreement,
            agreement_estimate=estimate_agreement(ref.op, now, ref.agreement, ref.expected),
        ))
    return DriftReport(n_texts=sample.n_texts, alpha=settings.alpha, threshold=threshold,
                       pass_rate_reference=reference.pass_rate, pass_rate=sample.pass_rate, steps=steps,
                       drift=any(s.shifted for s in steps))


__all__ = ["DRIFT", "NO_DRIFT", "DriftReport", "StepDrift", "drift_report", "estimate_agreement", "expected_agreement",
           "step_figures"]
