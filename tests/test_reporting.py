"""What runs show: the cost comparison, the plan markdown, tables and the F1 plot."""

from __future__ import annotations

import json

import pytest

from falconer_core.evaluation.scoring import score_texts
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
    evaluation = score_texts(tk.RuleRunner(), talks, predictor="proxy")
    rows = scores_table(evaluation)
    assert json.dumps(rows)
    assert [r["step"] for r in rows] == ["is_science", "speaker", "profession", "end_to_end", "mean over steps"]
    assert rows[1]["f1 95% interval"] == "[1.000, 1.000]" and rows[0]["accuracy 95% interval"]
    assert f1_plot(evaluation).startswith(b"\x89PNG")


def test_f1_plot_draws_an_error_bar_per_score(talks, monkeypatch):
    from matplotlib.axes import Axes

    class Mute(tk.RuleRunner):
        def get_span(self, texts, instruction):
            return [[] for _ in texts]

    evaluation = score_texts(Mute(), talks)
    seen = {}
    real = Axes.bar

    def spy(self, x, height, *args, **kwargs):
        seen.update(x=list(x), height=list(height), yerr=kwargs.get("yerr"))
        return real(self, x, height, *args, **kwargs)

    monkeypatch.setattr(Axes, "bar", spy)
    f1_plot(evaluation)
    shown = [*evaluation.scores, evaluation.end_to_end]
    assert seen["height"] == [s.f1 for s in shown]
    assert [list(e) for e in seen["yerr"]] == [[s.f1 - s.f1_lo for s in shown], [s.f1_hi - s.f1 for s in shown]]
