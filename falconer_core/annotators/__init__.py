"""Annotators: who supervises the metamodel on the sample, and annotating it.

`LLMAnnotator` asks an LLM (any OpenAI-compatible endpoint, or the offline `LocalLLM`) and
grounds its spans to offsets; `GoldAnnotator` answers from human labels in the corpus;
`AnnotatorChoice` names one as a flow parameter; `annotate_sample` runs the whole plan with it
and keeps the answers as a hashed `AnnotationSet`.
"""

from falconer_core.annotators.annotation import (
    AnnotationSet,
    StepGrounding,
    annotate_sample,
    annotation_rows,
    annotation_set_hash,
    annotator_fingerprint,
    build_annotator,
    sample_rows,
    step_grounding,
)
from falconer_core.annotators.choice import HUMAN, AnnotatorChoice, AnnotatorName
from falconer_core.annotators.gold import GoldAnnotator, coerce_label, coerce_spans
from falconer_core.annotators.grounding import GroundingResult, ground_spans, locate
from falconer_core.annotators.llm import AnnotatorStats, LLMAnnotator

__all__ = [
    "HUMAN",
    "AnnotationSet",
    "AnnotatorChoice",
    "AnnotatorName",
    "AnnotatorStats",
    "GoldAnnotator",
    "GroundingResult",
    "LLMAnnotator",
    "StepGrounding",
    "annotate_sample",
    "annotation_rows",
    "annotation_set_hash",
    "annotator_fingerprint",
    "build_annotator",
    "coerce_label",
    "coerce_spans",
    "ground_spans",
    "locate",
    "sample_rows",
    "step_grounding",
]
