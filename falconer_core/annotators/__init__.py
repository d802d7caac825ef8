"""Annotators: the `Runner`s that supervise the metamodel on the sample.

`LLMAnnotator` asks an LLM (any OpenAI-compatible endpoint, or the offline `LocalLLM`) and
grounds its spans to offsets; `GoldAnnotator` answers from human labels in the corpus.
"""

from falconer_core.annotators.gold import GoldAnnotator, coerce_label, coerce_spans
from falconer_core.annotators.grounding import GroundingResult, ground_spans, locate
from falconer_core.annotators.llm import AnnotatorStats, LLMAnnotator

__all__ = [
    "AnnotatorStats",
    "GoldAnnotator",
    "GroundingResult",
    "LLMAnnotator",
    "coerce_label",
    "coerce_spans",
    "ground_spans",
    "locate",
]
