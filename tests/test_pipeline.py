"""The plain pipeline glue (no Prefect): annotations to examples, hashes, splits, scores,
output rows, shards, costs, settings and reports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence

import pandas as pd
import pytest

from falconer_core.corpus import corpus_from_frame
from falconer_core.errors import ConfigError, PlanError
from falconer_core.pipeline import (
    FILTER_FIELD,
    AnnotatorChoice,
    HoldoutSettings,
    LLMChoice,
    ModelSource,
    Settings,
    annotate_sample,
    annotation_rows,
    build_annotator,
    compare_costs,
    execute_shard,
    execution_run_id,
    gold_rows,
    output_rows,
    pending_shards,
    score_runner,
    split_ids,
    step_examples,
)
from falconer_core.pipeline.report import f1_plot, plan_markdown, sample_table, scores_table
from falconer_core.plan import Plan
from falconer_core.store import Store
from falconer_core.types import Instructions, LabelExample, LabelResult, Span, SpanExample, per_text_instructions
from tests.mining_corpus import PLAN, tweets

TALKS = Plan.from_dict({
    "steps": [
        {"name": "is_science", "op": "label", "instruction": "Is this talk about science?"},
        {"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"},
        {"name": "profession", "op": "span", "for_each": "speaker", "instruction": "What is {speaker}'s profession?"},
    ],
    "filter": "is_science",
    "outputs": ["speaker", "profession"],
})
TEXTS = [
    "Speaker: Ada Byron. Ada Byron is a mathematician who talks about science.",
    "Speaker: Tom Hardy. A talk about music.",
    "A science talk with no named speaker.",
]


class RuleRunner:
    """Answers the TALKS plan by rules, so every expected answer is known."""

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        return [LabelResult("science" in t, 0.9) for t in texts]

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        out = []
        for text, ask in zip(texts, per_text_instructions(texts, instruction)):
            if ask == "Extract the speaker's name":
                pattern = r"Speaker: ([A-Z]\w+ [A-Z]\w+)"
            else:
                name = re.fullmatch(r"What is (.+)'s profession\?", ask).group(1)
                pattern = re.escape(name) + r" is an? (\w+)"
            out.append([Span(m.group(1), m.start(1), m.end(1), 0.8) for m in re.finditer(pattern, text)])
        return out


@pytest.fixture
def talks():
    return annotate_sample(TALKS, ["a", "b", "c"], TEXTS, RuleRunner(), annotator="rules")


def test_examples_cover_every_step_with_negatives_and_templated_instructions(talks):
    examples = step_examples(talks)
    assert [e.label for e in examples["is_science"]] == [True, False, True]
    assert all(isinstance(e, LabelExample) for e in examples["is_science"])
    speakers = examples["speaker"]  # only texts passing the filter; the third has no speaker
    assert [[s.text for s in e.spans] for e in speakers] == [["Ada Byron"], []]
    (profession,) = examples["profession"]
    assert isinstance(profession, SpanExample)
    assert profession.instruction == "What is Ada Byron's profession?"
    assert [s.text for s in profession.spans] == ["mathematician"]
    assert step_examples(talks, ids=["b"]) == {"is_science": [examples["is_science"][1]], "speaker": [], "profession": []}


def test_annotation_set_hash_follows_the_answers(talks):
    again = annotate_sample(TALKS, ["a", "b", "c"], TEXTS, RuleRunner(), annotator="someone else")
    assert again.hash == talks.hash  # same texts, same answers: same set, whoever answered

    class Contrarian(RuleRunner):
        def get_label(self, texts, instruction):
            return [LabelResult("science" not in t, 0.9) for t in texts]

    assert annotate_sample(TALKS, ["a", "b", "c"], TEXTS, Contrarian(), annotator="rules").hash != talks.hash


def test_annotation_rows_fit_the_store(talks, tmp_path):
    rows = annotation_rows(talks)
    assert set(rows["step"]) == {"is_science", "speaker", "profession@9-18"}
    negative = rows[(rows["text_id"] == "c") & (rows["step"] == "speaker")]
    assert len(negative) == 1 and negative["span_text"].isna().all()
    with Store(tmp_path / "s.duckdb") as store:
        assert store.record_annotations(talks.hash, rows, plan_hash=TALKS.hash, annotator="rules") == len(rows)


def test_split_is_by_text_deterministic_and_order_free():
    ids = [f"t{i}" for i in range(50)]
    train, heldout = split_ids(ids, HoldoutSettings(fraction=0.2, seed=3))
    assert len(heldout) == 10 and not set(train) & set(heldout) and set(train) | set(heldout) == set(ids)
    assert split_ids(list(reversed(ids)), HoldoutSettings(fraction=0.2, seed=3))[1] == list(reversed(heldout))
    assert split_ids(ids, HoldoutSettings(fraction=0.2, seed=4))[1] != heldout
    assert len(split_ids(ids[:12], HoldoutSettings(fraction=0.1, min_heldout=5))[1]) == 5
    assert split_ids(["only"], HoldoutSettings()) == (["only"], [])
    assert split_ids(ids, HoldoutSettings(fraction=0)) == (ids, [])


def test_output_rows_account_for_every_text(talks, tmp_path):
    rows = output_rows(talks.records, TALKS, "falconer-metamodel/3")
    verdicts = rows[rows["field"] == FILTER_FIELD]
    assert verdicts["text_id"].tolist() == ["a", "b", "c"] and verdicts["value"].tolist() == [True, False, True]
    speaker = rows[(rows["field"] == "speaker")]
    assert speaker["value"].iloc[0] == "Ada Byron" and pd.isna(speaker["value"].iloc[1])  # c: no speaker, one empty row
    assert (speaker["span_start"].iloc[0], speaker["span_end"].iloc[0]) == (9, 18)
    (job,) = rows[rows["field"] == "profession"].itertuples()
    assert (job.value, job.step, TEXTS[0][job.span_start : job.span_end]) == ("mathematician", "profession@9-18", "mathematician")
    assert set(rows["model_version"]) == {"falconer-metamodel/3"} and set(rows["plan_hash"]) == {TALKS.hash}
    with Store(tmp_path / "s.duckdb") as store:
        assert store.write_outputs("run", 0, rows) == len(rows)
        assert store.write_outputs("run", 0, rows) == len(rows)  # idempotent
        assert len(store.outputs("run")) == len(rows)


def test_output_field_named_like_the_filter_row_is_refused():
    plan = Plan.from_dict({"steps": [{"name": "x", "op": "label", "instruction": "X?"}], "outputs": [{"name": "_filter", "step": "x"}]})
    with pytest.raises(PlanError, match="reserved"):
        output_rows([], plan, "m/1")


def test_shards_and_run_ids():
    assert [(s.start, s.end) for s in pending_shards(45, 20, [])] == [(0, 20), (20, 40), (40, 45)]
    assert [s.index for s in pending_shards(45, 20, [0, 2])] == [1]
    run = execution_run_id("m/1", TALKS, "corpus", 20)
    assert run == execution_run_id("m/1", TALKS, "corpus", 20) != execution_run_id("m/2", TALKS, "corpus", 20)
    assert run != execution_run_id("m/1", TALKS, "corpus", 10)


def test_score_runner_per_step(talks):
    examples = step_examples(talks)
    ops = {s.name: s.op for s in TALKS.steps}
    perfect = score_runner(RuleRunner(), examples, ops, predictor="rules", reference="rules")
    assert [(s.step, s.f1) for s in perfect] == [("is_science", 1.0), ("speaker", 1.0), ("profession", 1.0)]

    class Mute(RuleRunner):
        def get_span(self, texts, instruction):
            return [[] for _ in texts]

    mute = {s.step: s for s in score_runner(Mute(), examples, ops, predictor="mute", reference="rules")}
    assert mute["speaker"].f1 == 0.0 and mute["is_science"].accuracy == 1.0 and mute["profession"].n == 1


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


def test_settings_put_everything_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FALCONER_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("FALCONER_MODEL_NAME", "tweets-model")
    settings = Settings()
    assert settings.store_path == tmp_path / "h" / "falconer.duckdb"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'h' / 'mlflow.db'}"
    assert settings.results_dir == tmp_path / "h" / "results" and settings.model_name == "tweets-model"
    monkeypatch.setenv("FALCONER_STORE_PATH", str(tmp_path / "elsewhere.duckdb"))
    assert Settings().store_path == tmp_path / "elsewhere.duckdb"


def test_choices_take_names_and_never_a_key(monkeypatch):
    assert AnnotatorChoice.model_validate("openai").name == "openai"
    assert AnnotatorChoice().identity() == "human"
    with pytest.raises(ValueError):
        AnnotatorChoice.model_validate({"name": "openai", "api_key": "sk-x"})
    with pytest.raises(ValueError):
        LLMChoice.model_validate({"backend": "openai", "api_key": "sk-x"})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown-0123456789abcdef")
    choice = LLMChoice(backend="openai", model="gpt-4.1-mini", base_url="http://localhost:8000/v1")
    assert choice.identity() == "openai:gpt-4.1-mini"
    assert "sk-never" not in choice.model_dump_json() + choice.cache_identity()
    assert choice.llm_settings().api_key.get_secret_value().startswith("sk-never")


def test_gold_annotator_needs_a_column_per_step():
    frame = corpus_from_frame(tweets(20), "text", "tweet_id")
    plan = Plan.from_dict(PLAN)
    with pytest.raises(ConfigError, match="missing"):
        build_annotator(AnnotatorChoice(), plan, frame.drop(columns=["people"]))
    renamed = frame.rename(columns={"people": "persons"})
    runner, client = build_annotator(AnnotatorChoice(columns={"people": "persons"}), plan, renamed)
    assert client is None and runner.get_label([frame["text"][0]], plan.steps[0].instruction)[0].value


def test_reports_render(talks):
    markdown = plan_markdown(TALKS)
    assert "`profession`" in markdown and "each `speaker` span" in markdown and "```yaml" in markdown
    table = sample_table(talks)
    assert table[0]["profession"] == "Ada Byron → mathematician" and table[1]["speaker"] == ""
    scores = score_runner(RuleRunner(), step_examples(talks), {s.name: s.op for s in TALKS.steps},
                          predictor="proxy", reference="rules")
    assert json.dumps(scores_table(scores))
    assert f1_plot(scores).startswith(b"\x89PNG")


def test_pipeline_imports_no_prefect_and_no_torch():
    code = "import sys, falconer_core.pipeline; print('prefect' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_annotate_fine_tune_evaluate_execute_without_prefect(tiny_encoder_path, tmp_path):
    from falconer_core.metamodel import TrainingSettings
    from falconer_core.pipeline.finetune import fine_tune_checkpoint
    from falconer_core.pipeline.scores import evaluate_model
    from falconer_core.pipeline.shards import make_shards

    frame = corpus_from_frame(tweets(60), "text", "tweet_id")
    plan = Plan.from_dict(PLAN)
    rows = gold_rows(frame, frame["id"][:40].tolist())
    runner, _ = build_annotator(AnnotatorChoice(), plan, rows)
    annotations = annotate_sample(plan, rows["id"], rows["text"], runner, annotator="human")
    start = ModelSource.base(str(tiny_encoder_path))
    checkpoint = fine_tune_checkpoint(
        annotations, start, TrainingSettings(epochs=1, progress=False), HoldoutSettings(), tmp_path / "ckpt"
    )
    assert (tmp_path / "ckpt" / checkpoint.key / "falconer.json").is_file()
    assert len(checkpoint.heldout_ids) == 10 and checkpoint.base_model == str(tiny_encoder_path)
    evaluation = evaluate_model(checkpoint.source, annotations, checkpoint.heldout_ids)
    assert evaluation.n_texts == 10 and {"mean_f1", "f1.people", "f1.mentions_place"} <= set(evaluation.metrics())
    result = execute_shard(checkpoint.source, plan, frame, make_shards(len(frame), 25)[1], model_version="m/1")
    assert result.n_texts == 25
    assert sorted(result.rows.query(f"field == '{FILTER_FIELD}'")["text_id"]) == frame["id"][25:50].tolist()
    assert isinstance(result.rows, pd.DataFrame)


def test_only_models_with_a_trained_head_score_zero_shot(tiny_encoder_path, tmp_path):
    from tests.conftest import make_tiny_encoder

    from falconer_core.pipeline.models import has_trained_head

    assert not has_trained_head(ModelSource.base(str(tiny_encoder_path)))
    tagging = make_tiny_encoder(tmp_path / "bio", id2label={0: "O", 1: "B", 2: "I"})
    assert has_trained_head(ModelSource.base(str(tagging)))
    assert has_trained_head(ModelSource(path=str(tmp_path), base_model="x", checkpoint=True))
