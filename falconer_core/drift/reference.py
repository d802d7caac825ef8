"""The drift reference of a model version: its proxy's confidences and outcomes on its own
held-out texts, recorded at registration.

Per top-level step it keeps the confidences the cascade routes on (label: P(true); span: the
per-text span confidence, `ScoredProxy`), the share judged true (label steps), the share in the
uncertain band (`DriftSettings`), and the held-out agreement with the annotator beside the
agreement the confidences alone predict (`signals.expected_agreement`): their ratio is what
rescales a later corpus's estimate. Held-out texts were never trained on, so they stand for
fresh texts of the same corpus: an unchanged corpus should look like them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.errors import ConfigError
from falconer_core.execution.interpreter import LabelOutcome, OutputRecord, execute_plan
from falconer_core.plan import Plan, Step

#: Version of the reference's JSON layout.
REFERENCE_FORMAT = 1


class DriftSettings(BaseModel):
    """What counts as uncertain, how many false alarms an unchanged corpus may raise, and, on
    every execute, how the run's check samples texts and when a fired signal is audited by the
    LLM and declared (`falconer_core.drift.check`)."""

    label_band: tuple[float, float] = Field((0.2, 0.8), description="A label's P(true) in [lo, hi] is uncertain.")
    span_band: float = Field(0.8, description="A span confidence below this is uncertain.")
    alpha: float = Field(0.05, description="False alarm rate on an unchanged corpus, over all steps together "
                                           "(each step's KS test runs at alpha / steps: Bonferroni).")
    sample: int = Field(2000, description="Corpus texts a drift check runs the model on (a seeded draw).")
    seed: int = 0
    min_texts: int = Field(
        100, ge=1, description="A corpus with fewer texts is not checked (status 'too few texts'): a KS test on a "
                               "few dozen texts sees only drastic shifts, and the check would cost a small job "
                               "more than its run.")
    check: bool = Field(True, description="Measure the drift signals after every execute (a seeded draw of "
                                          "`sample` texts the model runs on once more).")
    audit_size: int = Field(100, ge=0, description="When a signal fires and an LLM is configured: texts of the "
                                                   "drift sample the LLM labels to confirm it (0: never audit). 100: "
                                                   "a 0.28 drop is declared with probability 0.99, against 0.82 with "
                                                   "50 (benchmarks/drift_rates.py).")
    audit_llm: AnnotatorChoice | None = Field(
        None, description="The LLM that audits a fired signal (default: the run's cascade LLM; none: the "
                          "signal stands as 'drift suspected (no audit)').")
    gate: float | None = Field(
        None, gt=0, lt=1, description="Agreement with the LLM the task needs: drift is declared when the audit's "
                                      "Clopper-Pearson upper bound falls below it.")
    max_drop: float | None = Field(
        0.05, ge=0, lt=1, description="Drift is also declared when that upper bound falls below the reference's "
                                      "agreement less this drop (None: the gate alone).")

    def uncertain(self, op: str, confidence: float) -> bool:
        """Whether one confidence lies in the uncertain band of its step's kind."""
        if op == "label":
            return self.label_band[0] <= confidence <= self.label_band[1]
        return confidence < self.span_band


class Confidences(BaseModel):
    """The proxy's confidences on some texts: per top-level step (where it ran), and whether
    each text passed the plan's filter."""

    steps: dict[str, list[float]]
    ops: dict[str, Literal["label", "span"]]
    passed: list[bool]

    @property
    def n_texts(self) -> int:
        return len(self.passed)

    @property
    def pass_rate(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0


class StepReference(BaseModel):
    """One step's figures on the held-out texts."""

    step: str
    op: Literal["label", "span"]
    confidences: list[float] = Field(description="Per text where the step ran, in text order.")
    true_share: float | None = Field(None, description="Label steps: share judged true (P >= 0.5).")
    band_share: float = Field(description="Share in the uncertain band.")
    agreement: float | None = Field(None, description="Observed agreement with the annotator (label: accuracy; "
                                                      "span: mean per-text word F1); None without shared texts.")
    n_agreement: int = Field(0, description="Texts both the proxy and the annotator answered the step on.")
    expected: float = Field(description="The agreement the confidences predict (signals.expected_agreement).")


class DriftReference(BaseModel):
    """What an unchanged corpus looks like to one model version."""

    format: int = REFERENCE_FORMAT
    plan_hash: str
    annotator: str
    n_texts: int
    pass_rate: float = Field(description="Share of held-out texts passing the plan's filter.")
    steps: list[StepReference]
    settings: DriftSettings = Field(default_factory=DriftSettings)

    def step(self, name: str) -> StepReference:
        for s in self.steps:
            if s.step == name:
                return s
        raise ConfigError(f"the drift reference has no step {name!r}")


def top_level_steps(plan: Plan) -> list[Step]:
    """The steps drift is measured on: those run once per text (per-span steps follow them)."""
    return [s for s in plan.steps if s.for_each is None]


def measure_confidences(model: Any, plan: Plan, texts: Sequence[str]) -> tuple[Confidences, list[OutputRecord]]:
    """Run `plan` with the metamodel `model` on `texts` as an execute would, keeping each
    top-level step's confidence per text and each text's filter outcome."""
    from falconer_core.cascade.scores import ScoredProxy, step_score

    proxy = ScoredProxy(model)
    texts = list(texts)
    records = execute_plan(plan, texts, proxy, ids=list(range(len(texts))), include_failed=True)
    steps = top_level_steps(plan)
    found: dict[str, list[float]] = {}
    for step in steps:
        scores = (step_score(step, record, text, proxy) for record, text in zip(records, texts))
        found[step.name] = [float(s) for s in scores if s is not None]
    return Confidences(steps=found, ops={s.name: s.op for s in steps}, passed=[r.passed for r in records]), records


def build_reference(
    model: Any, annotations: AnnotationSet, heldout_ids: Collection[str], settings: DriftSettings | None = None,
) -> DriftReference:
    """The reference of `model` on the held-out texts of `annotations`."""
    from falconer_core.cascade.scores import text_f1
    from falconer_core.drift.signals import expected_agreement, step_figures

    settings = settings or DriftSettings()
    wanted = {str(i) for i in heldout_ids}
    pairs = [(i, t, r) for i, t, r in zip(annotations.ids, annotations.texts, annotations.records) if str(i) in wanted]
    if not pairs:
        raise ConfigError("a drift reference needs held-out texts; this checkpoint has none (holdout.fraction)")
    plan = annotations.plan
    texts = [t for _, t, _ in pairs]
    measured, records = measure_confidences(model, plan, texts)
    steps = []
    for step in top_level_steps(plan):
        agree = []
        for (_, text, theirs), mine in zip(pairs, records):
            a, b = mine.steps.get(step.name), theirs.steps.get(step.name)
            if a is None or b is None:
                continue
            if step.op == "label":
                agree.append(float(_value(a.result) == _value(b.result)))
            else:
                agree.append(text_f1(a.result, b.result, text))  # type: ignore[arg-type]
        confidences = measured.steps[step.name]
        figures = step_figures(step.op, confidences, settings)
        steps.append(StepReference(
            step=step.name, op=step.op, confidences=[round(c, 6) for c in confidences],
            true_share=figures["true_share"], band_share=figures["band_share"],
            agreement=sum(agree) / len(agree) if agree else None, n_agreement=len(agree),
            expected=expected_agreement(step.op, confidences),
        ))
    return DriftReference(plan_hash=plan.hash, annotator=annotations.annotator, n_texts=len(texts),
                          pass_rate=measured.pass_rate, steps=steps, settings=settings)


def _value(outcome: object) -> bool:
    return bool(outcome.value) if isinstance(outcome, LabelOutcome) else bool(outcome)


__all__ = [
    "Confidences",
    "DriftReference",
    "DriftSettings",
    "REFERENCE_FORMAT",
    "StepReference",
    "build_reference",
    "measure_confidences",
    "top_level_steps",
]
