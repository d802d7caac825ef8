"""The precision quality gate: may a faster precision serve this checkpoint?

A faster precision (bf16, int8) computes the same model a little differently, and on some
checkpoints that moves decisions that sit near a threshold. The gate runs the checkpoint's
held-out texts in fp32 and in each faster precision, scores every one against the same
reference, and compares each faster precision with fp32 by the paired bootstrap of
`comparison` (the texts are redrawn once per replicate for both, so the noise they share
cancels). A precision passes when it costs at most `max_cost` mean F1 (0.005) and the interval
of its difference is not wholly below -`max_cost`.

The reference is the held-out annotations when they are at hand (at registration), or else
fp32's own outputs (`fp32_reference`): then fp32 scores 1.0 against itself and a faster
precision's F1 is its agreement with fp32, text by text.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pydantic import BaseModel, Field

from falconer_core.annotators.annotation import AnnotationSet, annotate_sample
from falconer_core.errors import ConfigError
from falconer_core.evaluation.bootstrap import BootstrapSettings
from falconer_core.evaluation.comparison import Comparison, compare
from falconer_core.evaluation.scoring import Evaluation, score_texts
from falconer_core.metamodel.precision import REFERENCE_PRECISION, Capabilities, detect_capabilities
from falconer_core.plan import Plan
from falconer_core.types import Runner

#: The most mean F1 a faster precision may cost against fp32 on the held-out texts.
MAX_COST = 0.005
#: What `fp32_reference` names its annotator.
FP32_REFERENCE = "fp32 outputs"


class PrecisionVerdict(BaseModel):
    """One faster precision against fp32 on the same held-out texts."""

    precision: str
    passed: bool = Field(description="Whether it may serve the checkpoint.")
    fp32_f1: float = Field(description="fp32's mean F1 against the reference.")
    f1: float = Field(description="This precision's mean F1 against the reference.")
    delta: float = Field(description="f1 - fp32_f1 (negative: it costs F1).")
    lo: float = Field(description="Lower end of the paired bootstrap interval of delta.")
    hi: float = Field(description="Upper end of the paired bootstrap interval of delta.")
    n_texts: int
    seconds_per_text: float = Field(description="Plan time per text at this precision (fp32's is on the gate).")
    reason: str


class PrecisionGate(BaseModel):
    """The verdict on every faster precision this machine offered, for one checkpoint."""

    reference: str = Field(description="What F1 is measured against: the annotator, or fp32's outputs.")
    max_cost: float
    machine: str = Field(description="Where the gate ran (`Capabilities.describe`).")
    n_texts: int
    fp32_seconds_per_text: float
    verdicts: list[PrecisionVerdict]

    def passed(self) -> dict[str, bool]:
        """Precision -> whether it passed; fp32, the reference, always passes."""
        return {REFERENCE_PRECISION: True, **{v.precision: v.passed for v in self.verdicts}}


def decide(precision: str, comparison: Comparison, seconds_per_text: float, max_cost: float = MAX_COST) -> PrecisionVerdict:
    """The verdict on one precision from its paired comparison with fp32."""
    cost = -comparison.difference
    passed = cost <= max_cost and comparison.hi >= -max_cost
    if passed:
        reason = f"costs {cost:+.4f} F1 (at most {max_cost}) and the interval reaches above -{max_cost}"
    elif cost > max_cost:
        reason = f"costs {cost:+.4f} F1, more than {max_cost}"
    else:
        reason = f"the interval [{comparison.lo:+.4f}, {comparison.hi:+.4f}] lies wholly below -{max_cost}"
    return PrecisionVerdict(
        precision=precision, passed=passed, fp32_f1=comparison.incumbent_value, f1=comparison.candidate_value,
        delta=comparison.difference, lo=comparison.lo, hi=comparison.hi, n_texts=comparison.n_texts,
        seconds_per_text=round(seconds_per_text, 6), reason=reason,
    )


def offered_precisions(capabilities: Capabilities | None = None) -> list[str]:
    """The faster precisions this machine runs: bf16 where it has bf16 units (CUDA, AMX,
    AVX512-BF16), and int8 (dynamic quantization, on CPU) everywhere."""
    caps = capabilities or detect_capabilities()
    bf16 = caps.cuda or caps.refusal("bf16", "cpu") is None
    return (["bf16"] if bf16 else []) + ["int8"]


def fp32_reference(model: Runner, plan: Plan, ids: list[str], texts: list[str]) -> AnnotationSet:
    """fp32's own outputs on the texts as the reference, for when the annotations are not at hand."""
    return annotate_sample(plan, ids, texts, model, annotator=FP32_REFERENCE)


def gate_precisions(
    fp32: Runner,
    candidates: Mapping[str, Runner],
    annotations: AnnotationSet,
    ids: Collection[str] | None = None,
    *,
    fp32_evaluation: Evaluation | None = None,
    bootstrap: BootstrapSettings | None = None,
    max_cost: float = MAX_COST,
    machine: str | None = None,
) -> PrecisionGate:
    """Score fp32 (or take its `fp32_evaluation` on the same texts) and each candidate
    precision's runner against `annotations` on the texts in `ids` (all when None), and decide
    each candidate by the paired bootstrap against fp32."""
    settings = bootstrap or BootstrapSettings()
    base = fp32_evaluation or score_texts(fp32, annotations, ids, predictor=REFERENCE_PRECISION, bootstrap=settings)
    if not base.texts:
        raise ConfigError("the precision gate needs held-out texts; this checkpoint has none (holdout.fraction)")
    wanted = sorted(t.id for t in base.texts)
    verdicts = []
    for name, runner in candidates.items():
        evaluation = score_texts(runner, annotations, wanted, predictor=name, bootstrap=settings)
        verdicts.append(decide(name, compare(evaluation, base, REFERENCE_PRECISION, settings), evaluation.seconds_per_text, max_cost))
    return PrecisionGate(
        reference=annotations.annotator, max_cost=max_cost, machine=machine or detect_capabilities().describe(),
        n_texts=base.n_texts, fp32_seconds_per_text=round(base.seconds_per_text, 6), verdicts=verdicts,
    )


def gate_metamodel(
    model, annotations: AnnotationSet | None = None, ids: Collection[str] | None = None, *,
    texts: Mapping[str, str] | None = None, plan: Plan | None = None, precisions: list[str] | None = None,
    fp32_evaluation: Evaluation | None = None, bootstrap: BootstrapSettings | None = None, max_cost: float = MAX_COST,
) -> PrecisionGate:
    """The gate for an fp32 `Metamodel`: against `annotations` on `ids` when given, else
    against its own fp32 outputs on `texts` (id -> text) for `plan`; each precision in
    `precisions` (default: `offered_precisions()`) is a copy made with `with_precision`."""
    if annotations is None:
        if texts is None or plan is None:
            raise ConfigError("the precision gate needs the held-out annotations, or texts and a plan to run fp32 on")
        chosen = sorted(texts) if ids is None else [str(i) for i in ids]
        annotations = fp32_reference(model, plan, chosen, [texts[i] for i in chosen])
        ids = chosen
    candidates = {p: model.with_precision(p) for p in (precisions if precisions is not None else offered_precisions())}
    return gate_precisions(model, candidates, annotations, ids, fp32_evaluation=fp32_evaluation,
                           bootstrap=bootstrap, max_cost=max_cost)


__all__ = [
    "FP32_REFERENCE",
    "MAX_COST",
    "PrecisionGate",
    "PrecisionVerdict",
    "decide",
    "fp32_reference",
    "gate_metamodel",
    "gate_precisions",
    "offered_precisions",
]
