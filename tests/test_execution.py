"""execute_plan with a deterministic keyword runner: filters, per-span templating, one call per
step, provenance."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pandas as pd
import pytest

from falconer_core.errors import CorpusError, ModelError, PlanError
from falconer_core.execution import ExecutionSettings, LabelOutcome, OutputRecord, PerSpanOutcome, execute_plan
from falconer_core.execution.outputs import FILTER_FIELD, output_rows
from falconer_core.execution.shards import execution_run_id, pending_shards
from falconer_core.plan import Plan
from falconer_core.store import Store
from falconer_core.types import Instructions, LabelResult, Runner, Span, per_text_instructions
from tests import talks as tk


class KeywordRunner:
    """Answers by rules so results are predictable, and records every call.

    Labels: "Is this talk about X?" holds when X is in the text; "Is P a scientist?" holds when
    the text says "P is a ...scientist". Spans: speakers follow "Speaker: "; "What is P's
    profession?" is the word after "P is a"; "Extract the companies" finds "Co. <Name>";
    "Who runs C?" finds "<Name> runs C".
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], Instructions]] = []

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        self.calls.append(("label", list(texts), instruction))
        results = []
        for text, ask in zip(texts, per_text_instructions(texts, instruction)):
            if m := re.fullmatch(r"Is this talk about (?:the )?(\w+)\?", ask):
                results.append(LabelResult(m.group(1) in text.lower(), 0.9))
            elif m := re.fullmatch(r"Is (.+) a scientist\?", ask):
                results.append(LabelResult(bool(re.search(re.escape(m.group(1)) + r" is an? \w*scientist", text)), 0.8))
            else:
                raise AssertionError(f"no rule for {ask!r}")
        return results

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        self.calls.append(("span", list(texts), instruction))
        results = []
        for text, ask in zip(texts, per_text_instructions(texts, instruction)):
            if ask == "Extract the speaker's name":
                pattern = r"Speaker: ([A-Z]\w+ [A-Z]\w+)"
            elif m := re.fullmatch(r"What is (.+)'s profession\?", ask):
                pattern = re.escape(m.group(1)) + r" is an? (\w+)"
            elif ask == "Extract the companies":
                pattern = r"Co\. ([A-Z]\w+)"
            elif m := re.fullmatch(r"Who runs (.+)\?", ask):
                pattern = r"([A-Z]\w+) runs " + re.escape(m.group(1))
            elif m := re.fullmatch(r"How old is (\w+) of (\w+)\?", ask):
                pattern = re.escape(m.group(1)) + r" of " + re.escape(m.group(2)) + r" is (\d+)"
            else:
                raise AssertionError(f"no rule for {ask!r}")
            results.append([Span(m.group(1), m.start(1), m.end(1), 0.7) for m in re.finditer(pattern, text)])
        return results


TALKS = [
    "A talk on health and the brain. Speaker: Jane Doe. Jane Doe is a neuroscientist. "
    "Speaker: Bob Roe. Bob Roe is a surgeon.",
    "Health tips for runners. Speaker: Al Bo. Al Bo is a coach.",
    "The brain and health of birds, told without a named speaker.",
    "Music and the brain. Speaker: Cy Dee. Cy Dee is a pianist.",
]
HEALTH_AND_BRAIN = [
    {"name": "is_health", "op": "label", "instruction": "Is this talk about health?"},
    {"name": "is_brain", "op": "label", "instruction": "Is this talk about the brain?"},
    {"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"},
]
PROFESSION = {"name": "profession", "op": "span", "instruction": "What is {speaker}'s profession?", "for_each": "speaker"}
SCIENTIST = {"name": "scientist", "op": "label", "instruction": "Is {speaker} a scientist?", "for_each": "speaker"}


def _plan(**data) -> Plan:
    return Plan.from_dict(data)


def test_keyword_runner_satisfies_the_runner_protocol() -> None:
    assert isinstance(KeywordRunner(), Runner)


def test_multi_entity_filter_keeps_passing_texts_in_order() -> None:
    plan = _plan(steps=HEALTH_AND_BRAIN, filter={"and": ["is_health", "is_brain"]}, outputs=["speaker"])
    records = execute_plan(plan, TALKS, KeywordRunner(), ids=["t1", "t2", "t3", "t4"])
    assert [r.id for r in records] == ["t1", "t3"]
    assert records[0].fields == {"speaker": ["Jane Doe", "Bob Roe"]}
    assert records[1].fields == {"speaker": []}
    assert all(r.passed for r in records)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"or": ["is_health", "is_brain"]}, [0, 1, 2, 3]),
        ({"and": ["is_brain", {"not": "is_health"}]}, [3]),
        ({"not": {"or": ["is_health", "is_brain"]}}, []),
        ("is_health", [0, 1, 2]),
    ],
)
def test_filter_logic(condition, expected: list[int]) -> None:
    plan = _plan(steps=HEALTH_AND_BRAIN, filter=condition, outputs=["speaker", "is_brain"])
    assert [r.id for r in execute_plan(plan, TALKS, KeywordRunner())] == expected


def test_one_runner_call_per_step_over_the_texts_that_reach_it() -> None:
    plan = _plan(steps=[*HEALTH_AND_BRAIN, PROFESSION, SCIENTIST], filter={"and": ["is_health", "is_brain"]})
    runner = KeywordRunner()
    execute_plan(plan, TALKS, runner)
    assert [(op, len(texts)) for op, texts, _ in runner.calls] == [
        ("label", 4),  # is_health: every text
        ("label", 4),  # is_brain: every text
        ("span", 2),  # speaker: the two passing texts
        ("span", 2),  # profession: one pair per speaker span (Jane Doe, Bob Roe)
        ("label", 2),  # scientist: same pairs
    ]
    assert runner.calls[2][2] == "Extract the speaker's name"  # a plain string when uniform


def test_per_span_steps_template_the_instruction_per_span() -> None:
    plan = _plan(steps=[*HEALTH_AND_BRAIN, PROFESSION, SCIENTIST], filter="is_health")
    runner = KeywordRunner()
    records = execute_plan(plan, TALKS, runner)
    assert runner.calls[3][2] == [
        "What is Jane Doe's profession?",
        "What is Bob Roe's profession?",
        "What is Al Bo's profession?",
    ]
    assert runner.calls[3][1] == [TALKS[0], TALKS[0], TALKS[1]]  # same text, one pair per span
    first = records[0].fields
    assert first["profession"] == [
        {"span": "Jane Doe", "value": ["neuroscientist"]},
        {"span": "Bob Roe", "value": ["surgeon"]},
    ]
    assert first["scientist"] == [{"span": "Jane Doe", "value": True}, {"span": "Bob Roe", "value": False}]
    assert records[2].fields["profession"] == []  # no speaker, nothing asked


def test_per_span_step_without_spans_makes_no_call() -> None:
    plan = _plan(steps=[HEALTH_AND_BRAIN[2], PROFESSION])
    runner = KeywordRunner()
    records = execute_plan(plan, [TALKS[2]], runner)
    assert [op for op, _, _ in runner.calls] == ["span"]
    assert records[0].fields == {"speaker": [], "profession": []}


def test_identical_pairs_are_asked_once() -> None:
    text = "Speaker: Jane Doe. Jane Doe is a poet. Speaker: Jane Doe."
    runner = KeywordRunner()
    records = execute_plan(_plan(steps=[HEALTH_AND_BRAIN[2], PROFESSION]), [text], runner)
    assert runner.calls[1][2] == "What is Jane Doe's profession?"
    assert len(runner.calls[1][1]) == 1
    assert records[0].fields["profession"] == [
        {"span": "Jane Doe", "value": ["poet"]},
        {"span": "Jane Doe", "value": ["poet"]},
    ]


def test_nested_per_span_steps() -> None:
    text = "Co. Acme and Co. Bolt. Ann runs Acme. Ben runs Bolt. Cat runs Bolt. Ann of Acme is 50. Cat of Bolt is 41."
    plan = _plan(
        steps=[
            {"name": "company", "op": "span", "instruction": "Extract the companies"},
            {"name": "boss", "op": "span", "instruction": "Who runs {company}?", "for_each": "company"},
            {"name": "age", "op": "span", "instruction": "How old is {boss} of {company}?", "for_each": "boss"},
        ],
        outputs=["age"],
    )
    runner = KeywordRunner()
    record = execute_plan(plan, [text], runner)[0]
    assert runner.calls[2][2] == ["How old is Ann of Acme?", "How old is Ben of Bolt?", "How old is Cat of Bolt?"]
    assert record.fields == {
        "age": [
            {"span": "Acme", "value": [{"span": "Ann", "value": ["50"]}]},
            {"span": "Bolt", "value": [{"span": "Ben", "value": []}, {"span": "Cat", "value": ["41"]}]},
        ]
    }


def test_provenance_names_steps_confidences_and_offsets() -> None:
    plan = _plan(
        steps=[*HEALTH_AND_BRAIN, PROFESSION],
        filter={"and": ["is_health", "is_brain"]},
        outputs=[{"name": "who", "step": "speaker"}, "profession"],
    )
    record = execute_plan(plan, TALKS[:1], KeywordRunner())[0]
    assert record.sources == {"who": "speaker", "profession": "profession"}
    assert set(record.steps) == {"is_health", "is_brain", "speaker", "profession"}
    assert record.steps["is_health"].result == LabelOutcome(value=True, confidence=0.9)
    speakers = record.steps["speaker"].result
    assert [TALKS[0][s.start : s.end] for s in speakers] == ["Jane Doe", "Bob Roe"]
    assert all(s.confidence == 0.7 for s in speakers)
    per_span = record.steps["profession"].result
    assert isinstance(per_span[0], PerSpanOutcome)
    assert per_span[0].instruction == "What is Jane Doe's profession?"
    assert per_span[0].span == speakers[0]
    (job,) = per_span[0].result
    assert TALKS[0][job.start : job.end] == "neuroscientist"
    assert record.steps["profession"].instruction == "What is {speaker}'s profession?"


def test_records_serialise_and_validate_back() -> None:
    plan = _plan(steps=[*HEALTH_AND_BRAIN, PROFESSION, SCIENTIST], filter="is_health")
    for record in execute_plan(plan, TALKS, KeywordRunner()):
        data = json.loads(json.dumps(record.to_dict()))
        assert OutputRecord.model_validate(data) == record


def test_include_failed_returns_filter_results_for_every_text() -> None:
    plan = _plan(steps=HEALTH_AND_BRAIN, filter={"and": ["is_health", "is_brain"]}, outputs=["speaker"])
    records = execute_plan(plan, TALKS, KeywordRunner(), include_failed=True)
    assert [r.passed for r in records] == [True, False, True, False]
    failed = records[1]
    assert failed.fields == {} and set(failed.steps) == {"is_health", "is_brain"}
    assert failed.steps["is_brain"].result.value is False


def test_plan_without_filter_returns_every_text() -> None:
    plan = _plan(steps=[{"name": "is_music", "op": "label", "instruction": "Is this talk about music?"}])
    records = execute_plan(plan, TALKS, KeywordRunner())
    assert [r.fields["is_music"] for r in records] == [False, False, False, True]


def test_retrieval_only_plan_returns_ids() -> None:
    plan = _plan(steps=HEALTH_AND_BRAIN[:1], filter="is_health", outputs=[])
    assert [(r.id, r.fields) for r in execute_plan(plan, TALKS, KeywordRunner())] == [(0, {}), (1, {}), (2, {})]


def test_plan_may_be_given_as_a_dict() -> None:
    records = execute_plan({"steps": [HEALTH_AND_BRAIN[2]]}, TALKS[:2], KeywordRunner())
    assert records[1].fields == {"speaker": ["Al Bo"]}


def test_empty_corpus_makes_no_calls() -> None:
    runner = KeywordRunner()
    assert execute_plan({"steps": HEALTH_AND_BRAIN, "filter": "is_health"}, [], runner) == []
    assert runner.calls == []


def test_bad_ids_are_rejected() -> None:
    plan = _plan(steps=[HEALTH_AND_BRAIN[2]])
    with pytest.raises(CorpusError, match="2 ids for 3 texts"):
        execute_plan(plan, TALKS[:3], KeywordRunner(), ids=["a", "b"])
    with pytest.raises(CorpusError, match="not unique"):
        execute_plan(plan, TALKS[:2], KeywordRunner(), ids=["a", "a"])


def test_runner_that_drops_results_is_reported() -> None:
    class Lossy(KeywordRunner):
        def get_span(self, texts, instruction):
            return super().get_span(texts, instruction)[:-1]

    with pytest.raises(ModelError, match=r"Lossy.get_span returned 1 results for 2 texts at step 'speaker'"):
        execute_plan(_plan(steps=[HEALTH_AND_BRAIN[2]]), TALKS[:2], Lossy())


def test_progress_callback_and_bar(capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan(steps=[*HEALTH_AND_BRAIN, PROFESSION], filter="is_health")
    seen: list[tuple[str, int, int]] = []
    execute_plan(plan, TALKS, KeywordRunner(), progress=lambda *event: seen.append(event))
    assert seen == [("is_health", 1, 4), ("is_brain", 2, 4), ("speaker", 3, 4), ("profession", 4, 4)]
    execute_plan(plan, TALKS, KeywordRunner(), progress=True)
    assert "execute plan" in capsys.readouterr().err


@pytest.fixture
def talks():
    return tk.annotated_talks()



def test_output_rows_account_for_every_text(talks, tmp_path):
    rows = output_rows(talks.records, tk.TALKS, "falconer-metamodel/3")
    verdicts = rows[rows["field"] == FILTER_FIELD]
    assert verdicts["text_id"].tolist() == ["a", "b", "c"] and verdicts["value"].tolist() == [True, False, True]
    speaker = rows[(rows["field"] == "speaker")]
    assert speaker["value"].iloc[0] == "Ada Byron" and pd.isna(speaker["value"].iloc[1])  # c: no speaker, one empty row
    assert (speaker["span_start"].iloc[0], speaker["span_end"].iloc[0]) == (9, 18)
    (job,) = rows[rows["field"] == "profession"].itertuples()
    assert (job.value, job.step, tk.TEXTS[0][job.span_start : job.span_end]) == ("mathematician", "profession@9-18", "mathematician")
    assert set(rows["model_version"]) == {"falconer-metamodel/3"} and set(rows["plan_hash"]) == {tk.TALKS.hash}
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
    run = execution_run_id("m/1", tk.TALKS, "corpus", 20)
    assert run == execution_run_id("m/1", tk.TALKS, "corpus", 20) != execution_run_id("m/2", tk.TALKS, "corpus", 20)
    assert run != execution_run_id("m/1", tk.TALKS, "corpus", 10)


def test_small_jobs_run_in_process_unless_a_flow_is_asked_for_or_needed():
    from falconer_core.errors import ConfigError
    from falconer_core.execution.inprocess import SMALL_JOB_TEXTS, runs_in_process

    plain = ExecutionSettings()
    assert runs_in_process(50, plain, cascade=False, api_url=None, asked=None)
    assert not runs_in_process(SMALL_JOB_TEXTS, plain, cascade=False, api_url=None, asked=None)  # big: a flow
    assert not runs_in_process(50, plain, cascade=False, api_url="http://127.0.0.1:4200/api", asked=None)  # a server: use it
    assert not runs_in_process(50, plain, cascade=True, api_url=None, asked=None)
    assert not runs_in_process(50, ExecutionSettings(runner="processes"), cascade=False, api_url=None, asked=None)
    assert not runs_in_process(50, plain, cascade=False, api_url=None, asked=False)  # --flow
    assert runs_in_process(10**6, plain, cascade=False, api_url="http://x/api", asked=True)  # --local
    with pytest.raises(ConfigError, match="--local"):
        runs_in_process(50, ExecutionSettings(runner="dask"), cascade=False, api_url=None, asked=True)


def test_workers_share_the_cores_this_process_may_use(monkeypatch):
    """Threads per worker multiply with the workers to the cores of the CPU affinity (a
    container's or taskset's), not the machine's; in-flight shards stay a small window."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    assert ExecutionSettings().threads() == 8  # sequential: every core it may use
    assert ExecutionSettings(runner="processes").worker_count() == 8
    assert ExecutionSettings(runner="processes").threads() == 1
    assert ExecutionSettings(runner="processes", workers=2).threads() == 4
    assert ExecutionSettings(runner="processes", workers=3).threads() == 2
    assert ExecutionSettings(runner="processes", workers=2, threads_per_worker=3).threads() == 3
    assert ExecutionSettings().max_in_flight() == 2 and ExecutionSettings(runner="processes", workers=3).max_in_flight() == 6


def test_every_shard_sets_its_threads_on_the_thread_that_runs_it():
    """torch counts threads per calling thread: a shard on a fresh runner thread still gets all
    of its share, not OMP_NUM_THREADS."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from falconer_core.execution import use_threads

    before = torch.get_num_threads()
    try:
        use_threads(1)
        assert torch.get_num_threads() == 1
        use_threads(2)  # a later shard with another share is not ignored
        assert torch.get_num_threads() == 2
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(lambda: (use_threads(3), torch.get_num_threads())[1]).result() == 3
    finally:
        torch.set_num_threads(before)
