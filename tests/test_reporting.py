"""What runs show: the cost comparison, the plan markdown, tables and the F1 plot."""

from __future__ import annotations

import json

import pytest

from falconer_core.evaluation.scoring import score_runner
from falconer_core.finetune.examples import step_examples
from falconer_core.reporting.artifacts import f1_plot, plan_markdown, sample_table, scores_table
from falconer_core.reporting.costs import compare_costs
from tests import talks as tk


@pytest.fixture
def talks():
    return tk.annotated_talks()


def test_cost_comparison_extrapolates_llm_usage():
    usage = {"calls": 10, "total_tokens": 5000, "cost_usd": 0.02, "cache_hits": 0, "unpriced_models": []}
    rows = {r.route.split(" on ")[-1] if "annotator" in r.route else r.route: r for r in compare_costs(
        10_000, annotator="openai:gpt-4.1-mini", n_annotated=100, annotation_seconds=50.0, usage=usage,
        fine_tune_seconds=30.0, proxy_seconds=2.0, proxy_texts=1000,
    )}
    whole = rows["the whole corpus"]
    assert whole.seconds == 5000.0 and whole.tokens == 500_000 and whole.cost_usd == pytest.approx(2.0)
    assert rows["metamodel on the whole corpus"].seconds == 20.0
    assert rows["Falconer total (sample + fine-tune + metamodel)"].seconds == pytest.approx(100.0)


def test_cost_comparison_with_human_labels_or_cached_answers_claims_no_llm_cost():
    human = compare_costs(1000, annotator="human", n_annotated=100, annotation_seconds=0.01, usage={},
                          fine_tune_seconds=1.0, proxy_seconds=1.0, proxy_texts=100)
    assert human[0].seconds is None and human[1].cost_usd is None
    cached = compare_costs(1000, annotator="openai:m", n_annotated=100, annotation_seconds=0.01,
                           usage={"calls": 0, "cache_hits": 13, "total_tokens": 0, "cost_usd": 0.0},
                           fine_tune_seconds=1.0, proxy_seconds=1.0, proxy_texts=100)
    assert cached[0].seconds is None and "cache" in cached[0].basis


def test_reports_render(talks):
    markdown = plan_markdown(tk.TALKS)
    assert "`profession`" in markdown and "each `speaker` span" in markdown and "```yaml" in markdown
    table = sample_table(talks)
    assert table[0]["profession"] == "Ada Byron → mathematician" and table[1]["speaker"] == ""
    scores = score_runner(tk.RuleRunner(), step_examples(talks), {s.name: s.op for s in tk.TALKS.steps},
                          predictor="proxy", reference="rules")
    assert json.dumps(scores_table(scores))
    assert f1_plot(scores).startswith(b"\x89PNG")
