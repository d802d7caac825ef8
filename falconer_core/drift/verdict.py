"""The drift verdict of one execution run: the signals, the audit when one ran, and whether drift
is declared — one typed object the store keeps, `falconer runs` shows, MLflow logs and a Prefect
event can carry as its payload (`DriftVerdict.model_dump()`).

Statuses, in words a user can grep (`signals.NO_DRIFT` / `signals.DRIFT` among them):
"no reference" (the version has none, or one for another plan: nothing to compare with, never
an error), "no drift" (no signal fired), "drift suspected (no audit)" (a signal fired and no LLM
was there to check it), "drift not confirmed" (the audit's agreement is still good enough) and
"drift detected" (declared: the audit's Clopper-Pearson upper bound is below the floor).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from falconer_core.drift.signals import DRIFT, NO_DRIFT, DriftReport

NO_REFERENCE = "no reference"
TOO_FEW = "too few texts"
SUSPECTED = "drift suspected (no audit)"
NOT_CONFIRMED = "drift not confirmed"
DECLARED = DRIFT

DriftStatus = Literal["no reference", "too few texts", "no drift", "drift suspected (no audit)", "drift not confirmed", "drift detected"]


class DriftAudit(BaseModel):
    """A fired signal checked by the LLM on a small seeded sample of the drift sample."""

    n_texts: int
    agreement: float = Field(description="Share of audited texts whose proxy filter verdict matches the LLM's.")
    low: float = Field(description="Lower end of its 95% Clopper-Pearson interval.")
    high: float = Field(description="Upper end of its 95% Clopper-Pearson interval.")
    floor: float | None = Field(description="Drift is declared when `high` is below this (None: no floor known).")
    reference_agreement: float | None = Field(
        None, description="The reference's held-out agreement of the steps the filter reads (the lowest).")
    llm: str = Field(description="The auditing LLM's identity.")
    usage: dict[str, Any] = Field(default_factory=dict)


class DriftVerdict(BaseModel):
    """What one execution run found about drift."""

    run_id: str
    version: str | None = Field(description="The model version that ran (NAME/N).")
    plan_hash: str
    status: DriftStatus
    declared: bool = Field(description="Drift declared: the audit's upper bound is below the floor.")
    reason: str = Field(description="Why, in one sentence.")
    report: DriftReport | None = Field(None, description="The signals against the reference (None: no reference).")
    audit: DriftAudit | None = None

    @property
    def fired(self) -> bool:
        """Whether a signal fired (whatever the audit then said)."""
        return self.report is not None and self.report.drift

    def metrics(self) -> dict[str, float]:
        """Flat figures for MLflow (`drift.*`): the signals per step and the audit."""
        if self.report is None:
            return {}
        r = self.report
        out: dict[str, float] = {
            "drift.n_texts": r.n_texts, "drift.fired": float(r.drift), "drift.declared": float(self.declared),
            "drift.pass_rate": r.pass_rate, "drift.pass_rate_reference": r.pass_rate_reference,
        }
        for s in r.steps:
            step = f"drift.{s.step}"
            out[f"{step}.band_share"] = s.band_share
            out[f"{step}.agreement_estimate"] = s.agreement_estimate
            if s.true_share is not None:
                out[f"{step}.true_share"] = s.true_share
            if s.ks is not None and s.p_value is not None:
                out[f"{step}.ks"], out[f"{step}.p_value"] = s.ks, s.p_value
        if self.audit is not None:
            a = self.audit
            out |= {"drift.audit.n_texts": a.n_texts, "drift.audit.agreement": a.agreement,
                    "drift.audit.agreement_lo": a.low, "drift.audit.agreement_hi": a.high}
            if a.floor is not None:
                out["drift.audit.floor"] = a.floor
        return out

    def summary(self) -> str:
        """One short cell for `falconer runs`: the status and its figures."""
        if self.audit is not None:
            a = self.audit
            return f"{self.status} (audit {a.agreement:.2f} [{a.low:.2f}, {a.high:.2f}] of {a.n_texts})"
        if self.report is not None and self.report.steps:
            worst = min((s.p_value for s in self.report.steps if s.p_value is not None), default=None)
            return self.status if worst is None else f"{self.status} (min p {worst:.2g})"
        return self.status


def declare(audit_high: float, floor: float | None) -> bool:
    """The declare rule: the audit's upper bound on agreement is below the floor."""
    return floor is not None and audit_high < floor


def agreement_floor(gate: float | None, reference_agreement: float | None, max_drop: float | None) -> float | None:
    """The agreement below which drift is declared: the task's gate, or the reference's agreement
    less `max_drop`, whichever is higher (None when neither is known)."""
    floors = [f for f in (gate, None if reference_agreement is None or max_drop is None
                          else reference_agreement - max_drop) if f is not None]
    return max(floors) if floors else None


__all__ = [
    "DECLARED", "NOT_CONFIRMED", "NO_DRIFT", "NO_REFERENCE", "SUSPECTED", "TOO_FEW", "DriftAudit", "DriftStatus", "DriftVerdict",
    "agreement_floor", "declare",
]
