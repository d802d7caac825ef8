"""The packaged demo (see README.md here): 1,200 tweets of the Broad Twitter Corpus with their
human labels, and the plan for the demo instruction. The one place that names these files, so
the CLI's `demo`, the benchmarks and the tests cannot point at different copies."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from falconer_core.plan import Plan

DATA_DIR = Path(__file__).resolve().parent
DEMO_CORPUS_PATH = DATA_DIR / "demo_tweets.csv"
DEMO_PLAN_PATH = DATA_DIR / "demo_plan.yaml"
DEMO_INSTRUCTION = "Find tweets that mention a place and extract the people they mention"


def demo_plan() -> Plan:
    """The demo instruction's plan, loaded and validated."""
    from falconer_core.plan import Plan

    return Plan.load(DEMO_PLAN_PATH)


__all__ = ["DATA_DIR", "DEMO_CORPUS_PATH", "DEMO_INSTRUCTION", "DEMO_PLAN_PATH", "demo_plan"]
