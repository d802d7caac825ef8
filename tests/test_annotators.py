"""Span grounding, the LLM annotator (over the scripted HTTP server) and gold annotations."""

from __future__ import annotations

import json

import pytest

from falconer_core.annotators import GoldAnnotator, LLMAnnotator, ground_spans
from falconer_core.annotators.annotation import (
    annotate_sample,
    annotation_rows,
    annotation_set_hash,
    build_annotator,
)
from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.corpus import corpus_from_frame
from falconer_core.errors import ConfigError, CorpusError, LLMError
from falconer_core.execution import execute_plan
from falconer_core.llm import LLMSettings, LLMTruncatedError, OpenAIClient
from falconer_core.llm.choice import LLMChoice
from falconer_core.plan import Plan
from falconer_core.store import Store
from falconer_core.training import step_examples
from falconer_core.types import (
    LabelResult,
    Runner,
    Span,
)
from tests import talks as tk
from tests.llm_server import Annotator, ScriptedLLMServer, answer, reworded
from tests.mining_corpus import PLAN, tweets

# --- grounding ---------------------------------------------------------------------------------


def test_exact_match_gives_offsets():
    text = "The laptop costs $999 today."
    (span,) = ground_spans(text, ["$999"]).spans
    assert (span.text, span.start, span.end) == ("$999", 17, 21)
    assert text[span.start : span.end] == span.text


def test_case_insensitive_match_keeps_the_source_casing():
    result = ground_spans("Talk by ADA LOVELACE on engines.", ["Ada Lovelace"])
    assert [s.text for s in result.spans] == ["ADA LOVELACE"]
    assert result.matched == {"Ada Lovelace": "case"}


def test_whitespace_tolerant_match():
    text = "Speaker:  Grace\n  Hopper, admiral."
    result = ground_spans(text, ["grace hopper"])
    (span,) = result.spans
    assert span.text == "Grace\n  Hopper" and text[span.start : span.end] == span.text
    assert result.matched["grace hopper"] == "whitespace"


def test_quotes_the_model_added_are_stripped():
    assert [s.text for s in ground_spans("He said hello there.", ['"hello there."']).spans] == ["hello there"]


def test_every_occurrence_is_grounded_on_word_boundaries():
    text = "Art is art; start the art class."
    spans = ground_spans(text, ["art"]).spans
    assert [(s.start, s.text) for s in spans] == [(7, "art"), (22, "art")]


def test_overlapping_spans_keep_the_longest():
    spans = ground_spans("Flights to New York City today.", ["New York", "New York City"]).spans
    assert [s.text for s in spans] == ["New York City"]


def test_hallucinated_span_is_dropped():
    result = ground_spans("Call me at 555-1234.", ["555-1234", "555-9999", "  "])
    assert [s.text for s in result.spans] == ["555-1234"]
    assert result.dropped == ["555-9999"]


# --- LLM annotator ------------------------------------------------------------------------------


@pytest.fixture
def server():
    with ScriptedLLMServer() as running:
        yield running


def client_for(server: ScriptedLLMServer) -> OpenAIClient:
    return OpenAIClient(
        LLMSettings(base_url=server.url, api_key="sk-test", model="gpt-4o-mini", cache_dir=None,
                    backoff_initial=0.001, max_concurrency=1)
    )


TEXTS = [
    "Win a FREE prize now, call 0800-123-456!",
    "Are we still meeting at 6pm?",
    "URGENT: claim your cash at 0900 111 222",
]


def test_llm_annotator_labels_in_batches(server):
    server.push(
        answer({"answers": [{"id": 1, "label": True}, {"id": 2, "label": "no", "confidence": 0.8}]}),
        answer({"answers": [{"id": 1, "label": True}]}),
    )
    annotator = LLMAnnotator(client_for(server), batch_size=2)
    assert isinstance(annotator, Runner)
    results = annotator.get_label(TEXTS, "Is this message spam?")
    assert results == [LabelResult(True, 1.0), LabelResult(False, 0.8), LabelResult(True, 1.0)]
    assert server.calls == 2
    prompt = server.requests[0]["messages"][-1]["content"]
    assert "Is this message spam?" in prompt and "[1] Win a FREE" in prompt and "[2] Are we" in prompt
    assert annotator.stats.requests == 2 and annotator.stats.labels == 3


def test_llm_annotator_grounds_spans_and_counts_hallucinations(server):
    server.push(
        answer({"answers": [
            {"id": 1, "spans": ["0800-123-456"]},
            {"id": 2, "spans": []},
            {"id": 3, "spans": ["0900  111 222", "0900-555-000"]},  # second one is invented
        ]})
    )
    annotator = LLMAnnotator(client_for(server))
    spans = annotator.get_span(TEXTS, "Extract the phone numbers.")
    assert [[s.text for s in row] for row in spans] == [["0800-123-456"], [], ["0900 111 222"]]
    for text, row in zip(TEXTS, spans):
        assert all(text[s.start : s.end] == s.text for s in row)
    stats = annotator.stats
    assert (stats.spans_returned, stats.spans_grounded, stats.spans_dropped) == (3, 2, 1)
    assert (stats.grounded_exact, stats.grounded_whitespace) == (1, 1)
    assert stats.dropped_examples == [("0900-555-000", TEXTS[2])]


def test_llm_annotator_retries_an_answer_missing_ids(server):
    server.push(
        answer({"answers": [{"id": 1, "label": True}]}),
        answer({"answers": [{"id": 1, "label": True}, {"id": 2, "label": False}]}),
    )
    results = LLMAnnotator(client_for(server)).get_label(TEXTS[:2], "Is this message spam?")
    assert [r.value for r in results] == [True, False]
    assert "missing for ids [2]" in server.requests[1]["messages"][-1]["content"]


def test_llm_annotator_groups_per_text_instructions(server):
    def handler(body):
        prompt = body["messages"][-1]["content"]
        count = max(1, prompt.count("\n["))  # one "[i] text" line per text in a batch
        return answer({"answers": [{"id": i, "spans": []} for i in range(1, count + 1)]})

    server.handler = handler
    annotator = LLMAnnotator(client_for(server), batch_size=8)
    annotator.get_span(TEXTS, ["What does {a} cost?", "What does {b} cost?", "What does {a} cost?"])
    assert server.calls == 2


def test_llm_annotator_runs_a_plan(server):
    def handler(body):
        prompt = body["messages"][-1]["content"]
        if "Question:" in prompt:
            return answer({"answers": [{"id": 1, "label": "FREE" in prompt or "URGENT" in prompt}]})
        number = "0800-123-456" if "FREE" in prompt else "0900 111 222"
        return answer({"answers": [{"id": 1, "spans": [number]}]})

    server.handler = handler
    plan = Plan.from_dict({
        "steps": [
            {"name": "is_spam", "op": "label", "instruction": "Is this message spam?"},
            {"name": "phone", "op": "span", "instruction": "Extract the phone numbers."},
        ],
        "filter": "is_spam",
    })
    records = execute_plan(plan, TEXTS, LLMAnnotator(client_for(server), batch_size=1))
    assert [r.fields["phone"] for r in records] == [["0800-123-456"], ["0900 111 222"]]


# --- truncated replies and ungrounded spans -----------------------------------------------------

GOLD = tweets(40)
PEOPLE_STEP = "Extract the names of people."
_BY_TEXT = {row.text: (bool(row.mentions_place), json.loads(row.people)) for row in GOLD.itertuples()}


def gold_llm(**options) -> Annotator:
    """A scripted LLM that knows the tweets' gold labels and people."""
    return Annotator(lambda text, _: _BY_TEXT[text][0], lambda text, _: _BY_TEXT[text][1], **options)


def cached_client(server: ScriptedLLMServer, cache_dir) -> OpenAIClient:
    return OpenAIClient(LLMSettings(base_url=server.url, api_key="sk-test", model="gpt-4o-mini",
                                    cache_dir=cache_dir, backoff_initial=0.001, max_concurrency=2))


def test_a_truncated_batch_is_split_and_asked_again_never_cached(server, tmp_path):
    texts = list(GOLD["text"][:16])
    server.handler = llm = gold_llm(max_chars=130)  # 8 texts' answer does not fit, 2 do
    annotator = LLMAnnotator(cached_client(server, tmp_path), batch_size=8)
    spans = annotator.get_span(texts, PEOPLE_STEP)
    assert [sorted(s.text for s in row) for row in spans] == [_BY_TEXT[t][1] for t in texts]
    assert llm.cut > 0 and annotator.stats.truncated_splits == llm.cut
    # only complete answers reached the cache
    assert len(list(tmp_path.rglob("*.json"))) == server.calls - llm.cut
    # a re-run meets the same cut batches again (they were not cached) and the halves in the cache
    calls, cut = server.calls, llm.cut
    again = LLMAnnotator(cached_client(server, tmp_path), batch_size=8)
    assert again.get_span(texts, PEOPLE_STEP) == spans
    assert server.calls - calls == cut and llm.cut == 2 * cut


def test_a_single_text_still_cut_off_fails_with_what_to_raise(server):
    server.handler = gold_llm(max_chars=8)
    annotator = LLMAnnotator(cached_client(server, None), batch_size=4)
    with pytest.raises(LLMTruncatedError, match="one text alone.*FALCONER_LLM_MAX_TOKENS"):
        annotator.get_label(list(GOLD["text"][:4]), "Does this tweet mention a place?")


def _expected_grounding(frame) -> tuple[int, int, set[str]]:
    """Spans the scripted LLM returns for the passing texts, how many it rewords, and where."""
    returned = dropped = 0
    touched = set()
    for row in frame.itertuples():
        if row.mentions_place:
            people = json.loads(row.people)
            missed = [p for p in people if reworded(row.text, p, 0.3)]
            returned, dropped = returned + len(people), dropped + len(missed)
            touched |= {row.tweet_id} if missed else set()
    return returned, dropped, touched


def test_ungrounded_spans_are_counted_per_step_and_left_out_of_training(server):
    server.handler = gold_llm(reword=0.3)
    annotator = LLMAnnotator(cached_client(server, None), max_ungrounded=0.5)
    plan = Plan.from_dict(PLAN)
    annotations = annotate_sample(plan, GOLD["tweet_id"], GOLD["text"], annotator, annotator="llm")
    returned, dropped, touched = _expected_grounding(GOLD)
    found = annotations.ungrounded["people"]
    assert (found.spans_returned, found.spans_ungrounded) == (returned, dropped) and 0.15 < found.share < 0.45
    assert {text_id for text_id, _ in found.answers} == touched
    assert annotations.ungrounded_metrics() == {"ungrounded.people": round(dropped / returned, 6)}
    assert all(value.startswith(value[0] + ". ") for value, _ in found.examples)
    examples = step_examples(annotations)
    passing = int(GOLD["mentions_place"].sum())
    assert len(examples["mentions_place"]) == len(GOLD)  # label answers are all kept
    assert len(examples["people"]) == passing - len(touched)  # not taught as "nothing (more) here"
    left_texts = set(GOLD.set_index("tweet_id").loc[sorted(touched), "text"])
    assert not left_texts & {e.text for e in examples["people"]}
    # which answers are left out is part of what the set is: the same answers without it differ
    assert annotation_set_hash(plan, annotations.ids, annotations.texts, annotations.records) != annotations.hash


def test_a_step_past_the_ungrounded_limit_fails_with_examples(server):
    server.handler = gold_llm(reword=0.3)
    returned, dropped, _ = _expected_grounding(GOLD)
    assert dropped / returned > 0.2
    annotator = LLMAnnotator(cached_client(server, None))  # the default limit, 20%
    with pytest.raises(LLMError, match=r"step 'people': \d+ of the \d+ spans .*not in their text.*e\.g\. '\w\. \w+'") as failure:
        annotate_sample(Plan.from_dict(PLAN), GOLD["tweet_id"], GOLD["text"], annotator, annotator="llm")
    assert "FALCONER_LLM_MAX_UNGROUNDED" in str(failure.value) and failure.value.problems


# --- gold annotator -----------------------------------------------------------------------------


def test_gold_labels_by_text_and_by_id():
    by_text = GoldAnnotator(labels={"Is it spam?": {TEXTS[0]: True, TEXTS[1]: "no"}})
    assert [r.value for r in by_text.get_label(TEXTS[:2], "Is it spam?")] == [True, False]
    by_id = GoldAnnotator(labels={"Is it spam?": {"m1": 1, "m2": 0}}, texts={"m1": TEXTS[0], "m2": TEXTS[1]})
    assert [r.value for r in by_id.get_label(TEXTS[:2], "Is it spam?")] == [True, False]
    assert isinstance(by_id, Runner)


def test_gold_spans_accept_spans_offsets_strings_and_json():
    text = TEXTS[0]
    gold = GoldAnnotator(spans={"Phone?": {
        text: [Span("0800-123-456", 27, 39)],
        TEXTS[1]: json.dumps([{"start": 24, "end": 27}]),
        TEXTS[2]: '["0900 111 222"]',
    }})
    spans = gold.get_span(TEXTS, "Phone?")
    assert [[s.text for s in row] for row in spans] == [["0800-123-456"], ["6pm"], ["0900 111 222"]]


def test_gold_unknown_items_raise_clear_errors():
    gold = GoldAnnotator(labels={"Is it spam?": {TEXTS[0]: True}})
    with pytest.raises(CorpusError, match="no gold label for instruction 'Is it spam\\?' on text"):
        gold.get_label([TEXTS[1]], "Is it spam?")
    with pytest.raises(CorpusError, match="Add a column"):
        gold.get_label([TEXTS[0]], "Is it ham?")
    with pytest.raises(CorpusError, match="not a boolean"):
        GoldAnnotator(labels={"q": {"t": "maybe"}}).get_label(["t"], "q")
    with pytest.raises(CorpusError, match="does not match the text"):
        GoldAnnotator(spans={"q": {"abc": [{"start": 0, "end": 1, "text": "z"}]}}).get_span(["abc"], "q")
    with pytest.raises(CorpusError, match="verbatim"):
        GoldAnnotator(spans={"q": {"abc": ["xyz"]}}).get_span(["abc"], "q")


def test_gold_from_corpus_columns_runs_a_multi_step_plan():
    plan = Plan.from_dict({
        "steps": [
            {"name": "is_health", "op": "label", "instruction": "Is this talk about health?"},
            {"name": "speaker", "op": "span", "instruction": "Extract the speaker."},
            {"name": "profession", "op": "span", "for_each": "speaker",
             "instruction": "What is {speaker}'s profession?"},
        ],
        "filter": "is_health",
        "outputs": ["speaker", "profession"],
    })
    rows = [
        {"text": "Surgeon Atul Gawande talks about health care.", "is_health": "yes",
         "speaker": '["Atul Gawande"]', "profession": '{"Atul Gawande": ["Surgeon"]}'},
        {"text": "Brian Eno on music.", "is_health": False, "speaker": None},
    ]
    gold = GoldAnnotator.from_records(rows, plan)
    (record,) = execute_plan(plan, [r["text"] for r in rows], gold)
    assert record.fields == {"speaker": ["Atul Gawande"],
                             "profession": [{"span": "Atul Gawande", "value": ["Surgeon"]}]}
    with pytest.raises(CorpusError, match="no gold span"):
        gold.get_span([rows[1]["text"]], "Extract the speaker.")


def test_gold_from_a_dataframe_with_renamed_columns():
    pd = pytest.importorskip("pandas")
    plan = Plan.from_dict({"steps": [{"name": "spam", "op": "label", "instruction": "Is it spam?"}], "filter": "spam"})
    frame = pd.DataFrame({"msg": TEXTS, "label": ["spam", "ham", "spam"]})
    frame["is_spam"] = frame["label"] == "spam"
    gold = GoldAnnotator.from_records(frame, plan, text_field="msg", columns={"spam": "is_spam"})
    assert [r.value for r in gold.get_label(TEXTS, "Is it spam?")] == [True, False, True]


@pytest.fixture
def talks():
    return tk.annotated_talks()



def test_annotation_set_hash_follows_the_answers(talks):
    again = annotate_sample(tk.TALKS, ["a", "b", "c"], tk.TEXTS, tk.RuleRunner(), annotator="someone else")
    assert again.hash == talks.hash  # same texts, same answers: same set, whoever answered

    class Contrarian(tk.RuleRunner):
        def get_label(self, texts, instruction):
            return [LabelResult("science" not in t, 0.9) for t in texts]

    assert annotate_sample(tk.TALKS, ["a", "b", "c"], tk.TEXTS, Contrarian(), annotator="rules").hash != talks.hash


def test_annotation_rows_fit_the_store(talks, tmp_path):
    rows = annotation_rows(talks)
    assert set(rows["step"]) == {"is_science", "speaker", "profession@9-18"}
    negative = rows[(rows["text_id"] == "c") & (rows["step"] == "speaker")]
    assert len(negative) == 1 and negative["span_text"].isna().all()
    with Store(tmp_path / "s.duckdb") as store:
        assert store.record_annotations(talks.hash, rows, plan_hash=tk.TALKS.hash, annotator="rules") == len(rows)


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
