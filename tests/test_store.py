"""The DuckDB store on real files: round trips, idempotent shards, crash and resume, schemas."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from falconer_core.corpus import corpus_from_frame, corpus_id
from falconer_core.errors import ConfigError, StoreError
from falconer_core.settings import Settings
from falconer_core.store import Store

N_TEXTS = 11
SHARD_SIZE = 3


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "state" / "falconer.duckdb") as s:
        yield s


@pytest.fixture
def corpus() -> pd.DataFrame:
    texts = [f"Laptop {i} costs ${100 + i}." if i % 2 else f"Review {i}: meh." for i in range(N_TEXTS)]
    return corpus_from_frame(pd.DataFrame({"text": texts}))


def shard_outputs(corpus: pd.DataFrame, shard: int) -> pd.DataFrame:
    """What execution would write for one shard: a label field for every text, and one price
    span per text that has one (a null row where none was found)."""
    part = corpus.iloc[shard * SHARD_SIZE : (shard + 1) * SHARD_SIZE]
    rows = []
    for text_id, text in zip(part["id"], part["text"], strict=True):
        rows.append({"text_id": text_id, "field": "is_laptop", "value": "Laptop" in text, "confidence": 0.9, "step": "s1"})
        start = text.find("$")
        if start >= 0:
            end = text.index(".", start)
            rows.append({"text_id": text_id, "field": "price", "value": text[start:end], "span_start": start,
                         "span_end": end, "confidence": 0.8, "step": "s2"})
        else:
            rows.append({"text_id": text_id, "field": "price", "value": None, "step": "s2"})
    return pd.DataFrame(rows)


def n_shards() -> int:
    return -(-N_TEXTS // SHARD_SIZE)


def assert_exactly_the_corpus(outputs: pd.DataFrame, corpus: pd.DataFrame) -> None:
    for field in ("is_laptop", "price"):
        ids = outputs.loc[outputs["field"] == field, "text_id"]
        assert sorted(ids) == sorted(corpus["id"]), field  # no loss, no duplicates


# -- opening -------------------------------------------------------------------------------------


def test_default_path_creates_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store() as s:
        assert s.path == Settings().store_path == Path(".falconer") / "falconer.duckdb"
    assert (tmp_path / ".falconer" / "falconer.duckdb").is_file()


def test_state_survives_reopen_and_two_stores_share_a_file(tmp_path, corpus):
    path = tmp_path / "s.duckdb"
    with Store(path) as a, Store(path) as b:
        a.write_outputs("r", 0, shard_outputs(corpus, 0))
        assert b.completed_shards("r") == [0]
    with Store(path) as c:
        assert len(c.outputs("r")) == 2 * SHARD_SIZE


def test_second_process_gets_a_clear_error(tmp_path):
    path = tmp_path / "s.duckdb"
    script = textwrap.dedent(
        f"""
        from falconer_core.errors import StoreBusyError
        from falconer_core.store import Store
        try:
            Store({str(path)!r})
        except StoreBusyError as exc:
            print(exc)
        """
    )
    root = Path(__file__).resolve().parents[1]
    with Store(path):
        done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert "cannot open the store" in done.stdout and "another Falconer process" in done.stdout, done.stderr


# -- corpora, plans, runs ------------------------------------------------------------------------


def test_corpus_round_trip_and_upsert(store, corpus):
    cid = store.upsert_corpus(corpus, name="reviews", source="r.csv")
    assert cid == corpus_id(corpus)
    assert store.upsert_corpus(corpus, name="renamed") == cid
    registry = store.corpora()
    assert registry[["corpus_id", "name", "n_texts", "source"]].values.tolist() == [[cid, "renamed", N_TEXTS, "r.csv"]]
    texts = store.corpus_texts(cid)
    pd.testing.assert_frame_equal(texts, corpus[["id", "text"]])  # original order ("10" after "9")
    with pytest.raises(StoreError, match="no corpus 'nope'"):
        store.corpus_texts("nope")


def test_plan_round_trip_keeps_first_created_at(store):
    store.upsert_plan("p1", {"steps": [{"name": "s1", "op": "label"}]}, "Find laptops")
    first = store.plans()["created_at"].iloc[0]
    store.upsert_plan("p1", json.dumps({"steps": []}), "Find laptops")
    assert store.plan("p1") == {"steps": []}
    assert store.plans()["created_at"].iloc[0] == first and len(store.plans()) == 1
    assert store.plan("missing") is None
    with pytest.raises(StoreError, match="not valid JSON"):
        store.upsert_plan("p2", "{nope")


def test_run_lifecycle(store):
    store.upsert_run("r1", "execute", plan_hash="p1", model_version="falconer@3", params={"batch_size": 8})
    run = store.run("r1")
    assert run["status"] == "running" and run["finished_at"] is None and run["params"] == {"batch_size": 8}
    store.upsert_run("r1", "execute", corpus_id="c1")  # a later upsert keeps what it does not say
    store.set_run_status("r1", "completed")
    run = store.run("r1")
    assert (run["plan_hash"], run["model_version"], run["corpus_id"]) == ("p1", "falconer@3", "c1")
    assert run["status"] == "completed" and run["finished_at"] >= run["started_at"]
    assert store.runs(kind="execute")["run_id"].tolist() == ["r1"]
    assert store.run("nope") is None
    with pytest.raises(StoreError, match="unknown run status 'done'"):
        store.set_run_status("r1", "done")
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.set_run_status("nope", "failed")


@pytest.mark.parametrize("params", [{"api_key": "sk-x"}, {"llm": {"OPENAI_API_KEY": "sk-x"}}, {"password": "p"}])
def test_secrets_are_never_stored(store, params):
    with pytest.raises(ConfigError, match="looks like a credential"):
        store.upsert_run("r1", "mine", params=params)
    assert store.run("r1") is None


# -- annotations ---------------------------------------------------------------------------------


def annotation_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text_id": ["1", "1", "2", "3"],
            "step": ["is_laptop", "price", "price", "is_laptop"],
            "kind": ["label", "span", "span", "label"],
            "value": [True, None, None, False],
            "span_text": [None, "$101", None, None],
            "start": [None, 13, None, None],
            "end": [None, 17, None, None],
        }
    )


def test_annotations_round_trip_and_replace(store):
    assert store.record_annotations("A1", annotation_frame(), plan_hash="p1", annotator="human") == 4
    assert store.record_annotations("A1", annotation_frame(), plan_hash="p1", annotator="human") == 4
    stored = store.annotations("A1")
    assert len(stored) == 4 and set(stored["annotator"]) == {"human"}
    span = stored[stored["span_text"].notna()].iloc[0]
    assert (span["span_text"], span["start"], span["end"]) == ("$101", 13, 17)
    assert stored["value"].dropna().tolist() == [True, False]
    assert len(store.annotations(plan_hash="p1")) == 4 and store.annotations("other").empty


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": ["label", "span", "span", "bogus"]}, "isin"),
        ({"value": [None, None, None, False]}, "label rows have a value"),
        ({"start": [None, None, None, None]}, "all or none of span_text/start/end"),
        ({"end": [None, 10, None, None]}, "0 <= start <= end"),
    ],
)
def test_annotation_schema_violations(store, change, message):
    with pytest.raises(StoreError, match=message):
        store.record_annotations("A1", annotation_frame().assign(**change))
    assert store.annotations().empty


# -- outputs -------------------------------------------------------------------------------------


def test_outputs_round_trip(store, corpus):
    store.upsert_run("r1", "execute", plan_hash="p1", model_version="falconer@2")
    written = store.write_outputs("r1", 0, shard_outputs(corpus, 0))
    out = store.outputs("r1")
    assert written == len(out) == 2 * SHARD_SIZE
    labels = out[out["field"] == "is_laptop"].set_index("text_id")["value"].to_dict()
    assert labels == {"0": "false", "1": "true", "2": "false"}  # bools stored as text
    price = out[(out["field"] == "price") & out["value"].notna()].iloc[0]
    text = corpus.set_index("id").loc[price["text_id"], "text"]
    assert text[price["span_start"] : price["span_end"]] == price["value"]
    none_found = out[(out["field"] == "price") & out["value"].isna()]
    assert none_found["span_start"].isna().all() and len(none_found) == 2
    assert set(out["model_version"]) == {"falconer@2"} and set(out["plan_hash"]) == {"p1"}  # from the run
    assert str(out["span_start"].dtype) == "Int64" and str(out["created_at"].dtype) == "datetime64[us, UTC]"
    assert len(store.outputs(field="price")) == SHARD_SIZE and len(store.outputs("r1", limit=2)) == 2


def test_rewriting_a_shard_replaces_it(store, corpus):
    store.write_outputs("r1", 0, shard_outputs(corpus, 0))
    store.write_outputs("r1", 1, shard_outputs(corpus, 1))
    store.write_outputs("r1", 0, shard_outputs(corpus, 0))
    store.write_outputs("r2", 0, shard_outputs(corpus, 0))  # another run is untouched by r1
    out = store.outputs("r1")
    assert len(out) == 2 * 2 * SHARD_SIZE
    assert not out.duplicated(["text_id", "field"]).any()
    assert store.completed_shards("r1") == [0, 1]
    smaller = shard_outputs(corpus, 0).iloc[:2]
    store.write_outputs("r1", 0, smaller)
    assert len(store.outputs("r1").query("shard == 0")) == 2


def test_numpy_shard_numbers_and_bools(store, corpus):
    frame = shard_outputs(corpus, 0)
    frame["value"] = frame["value"].map(lambda v: np.bool_(v) if isinstance(v, bool) else v)
    store.write_outputs("r1", np.int64(2), frame)
    assert store.completed_shards("r1") == [2]
    assert set(store.outputs("r1", field="is_laptop")["value"]) == {"true", "false"}


def test_one_store_shared_by_threads_serialises_writes(store, corpus):
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda shard: store.write_outputs("r1", shard, shard_outputs(corpus, shard)), range(n_shards())))
    assert store.completed_shards("r1") == list(range(n_shards()))
    assert_exactly_the_corpus(store.outputs("r1"), corpus)


def test_empty_shard_counts_as_completed(store):
    empty = pd.DataFrame({"text_id": pd.Series([], dtype="str"), "field": pd.Series([], dtype="str")})
    assert store.write_outputs("r1", 4, empty) == 0
    assert store.completed_shards("r1") == [4]


def test_failed_shard_write_rolls_back(store, corpus, monkeypatch):
    store.write_outputs("r1", 0, shard_outputs(corpus, 0))
    before = store.outputs("r1")

    def boom(table, frame):
        raise OSError("disk full")

    monkeypatch.setattr(store.db, "insert_frame", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write_outputs("r1", 0, shard_outputs(corpus, 0).iloc[:1])
    with pytest.raises(OSError):
        store.write_outputs("r1", 1, shard_outputs(corpus, 1))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.outputs("r1"), before)  # the delete was rolled back too
    assert store.completed_shards("r1") == [0]


def test_crash_between_shards_then_resume(tmp_path, corpus):
    """A process dies for real (os._exit) after two shards and in the middle of the third's
    transaction; a fresh process resumes from completed_shards and ends with exactly the corpus."""
    path = tmp_path / "s.duckdb"
    corpus_file = tmp_path / "corpus.parquet"
    corpus.to_parquet(corpus_file)
    script = textwrap.dedent(
        f"""
        import os, pandas as pd
        from falconer_core.store import Store
        from tests.test_store import shard_outputs
        corpus = pd.read_parquet({str(corpus_file)!r})
        store = Store({str(path)!r})
        store.upsert_run("r1", "execute")
        for shard in (0, 1):
            store.write_outputs("r1", shard, shard_outputs(corpus, shard))
        real_insert = store.db.insert_frame
        def die(table, frame):
            real_insert(table, frame)  # rows are in, but the transaction never commits
            os._exit(3)
        store.db.insert_frame = die
        store.write_outputs("r1", 2, shard_outputs(corpus, 2))
        """
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr

    with Store(path) as store:
        assert store.completed_shards("r1") == [0, 1]
        assert set(store.outputs("r1")["shard"]) == {0, 1}  # nothing of the half-written shard
        for shard in range(n_shards()):
            if shard not in store.completed_shards("r1"):
                store.write_outputs("r1", shard, shard_outputs(corpus, shard))
        store.set_run_status("r1", "completed")
        assert store.completed_shards("r1") == list(range(n_shards()))
        assert_exactly_the_corpus(store.outputs("r1"), corpus)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(confidence=1.5), r"column 'confidence': in_range\(0.0, 1.0\)"),
        (lambda f: f.assign(span_start=5, span_end=2), r"0 <= span_start <= span_end"),
        (lambda f: f.assign(span_start=-1, span_end=2), r"0 <= span_start <= span_end"),
        (lambda f: f.drop(columns=["text_id"]), r"lacks required column\(s\) \['text_id'\]"),
        (lambda f: f.assign(field=None), r"column 'field'.*not_nullable"),
        (lambda f: f.assign(run_id="other"), r"run_id values \['other'\] but is written as run_id='r1'"),
        (lambda f: f.assign(shard=7), r"shard values \['7'\] but is written as shard=0"),
        (lambda f: f.assign(colour="red"), r"unknown columns \['colour'\]"),
    ],
)
def test_output_schema_violations_are_rejected(store, corpus, change, message):
    with pytest.raises(StoreError, match=message):
        store.write_outputs("r1", 0, change(shard_outputs(corpus, 0)))
    assert store.outputs().empty and store.completed_shards("r1") == []


@pytest.mark.parametrize("shard", [-1, 1.5, True])
def test_bad_shard_number(store, corpus, shard):
    with pytest.raises(StoreError, match="shard must be a non-negative int"):
        store.write_outputs("r1", shard, shard_outputs(corpus, 0))


def test_frames_read_back_are_validated_too(store, corpus):
    store.write_outputs("r1", 0, shard_outputs(corpus, 0))
    store.query("UPDATE outputs SET confidence = 2.0 WHERE text_id = '1'")  # corrupted behind our back
    with pytest.raises(StoreError, match=r"(?s)outputs does not match OutputsSchema.*confidence"):
        store.outputs("r1")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_export_and_read_back(store, corpus, tmp_path, fmt):
    for shard in range(n_shards()):
        store.write_outputs("r1", shard, shard_outputs(corpus, shard))
    store.write_outputs("r2", 0, shard_outputs(corpus, 0))
    path = tmp_path / "export" / f"out.{fmt}"
    assert store.export_outputs(path, run_id="r1") == 2 * N_TEXTS
    readers = {
        "csv": lambda p: pd.read_csv(p, dtype={"text_id": str, "value": str}, keep_default_na=False, na_values=[""]),
        "parquet": pd.read_parquet,
        "jsonl": lambda p: pd.read_json(p, lines=True, dtype={"text_id": str, "value": str}),
    }
    back = readers[fmt](path)
    expected = store.outputs("r1")
    assert list(back.columns) == list(expected.columns)
    assert_exactly_the_corpus(back.assign(text_id=back["text_id"].astype(str)), corpus)
    key = ["text_id", "field"]
    got = back.assign(text_id=back["text_id"].astype(str)).sort_values(key).reset_index(drop=True)
    want = expected.sort_values(key).reset_index(drop=True)
    assert got["value"].fillna("<none>").astype(str).tolist() == want["value"].fillna("<none>").tolist()
    assert got["span_start"].fillna(-1).astype(int).tolist() == want["span_start"].fillna(-1).astype(int).tolist()
    assert got["confidence"].fillna(-1).tolist() == pytest.approx(want["confidence"].fillna(-1).tolist())
    assert store.export_outputs(tmp_path / f"all.{fmt}", format=fmt) == 2 * N_TEXTS + 2 * SHARD_SIZE  # every run


def test_export_unknown_format(store, tmp_path):
    with pytest.raises(ConfigError, match="use csv, parquet or jsonl"):
        store.export_outputs(tmp_path / "out.xlsx")


# -- parts, reuse, progress and upgrades ------------------------------------------------------------


def _part(corpus: pd.DataFrame, run_id: str, shard: int):
    import pyarrow as pa

    from falconer_core.execution.parts import PART_SCHEMA
    from falconer_core.store.schemas import normalise_outputs

    frame = normalise_outputs(shard_outputs(corpus, shard), run_id, shard)
    return pa.Table.from_pandas(frame, schema=PART_SCHEMA, preserve_index=False)


def test_committing_a_part_twice_keeps_one_copy(store, corpus):
    store.upsert_run("r", "execute", model_version="m/1")
    first = store.commit_part("r", 1, _part(corpus, "r", 1), work_key="k1", n_texts=3, seconds=0.5)
    assert store.commit_part("r", 1, _part(corpus, "r", 1), work_key="k1", n_texts=3, seconds=0.5) == first
    assert len(store.outputs("r")) == first and store.completed_shards("r") == [1]
    with pytest.raises(StoreError, match="another run"):
        store.commit_part("other", 1, _part(corpus, "r", 1))


def test_shards_with_the_same_work_are_copied_not_rerun(store, corpus):
    store.upsert_run("old", "execute", model_version="m/1")
    for shard in range(n_shards()):
        store.commit_part("old", shard, _part(corpus, "old", shard), work_key=f"k{shard}", n_texts=3, seconds=1.0)
    store.upsert_run("new", "execute", model_version="m/1")
    reused = store.reuse_shards("new", {0: "k0", 1: "k1", 2: "changed", 3: "k3"})
    assert reused == [0, 1, 3] and store.completed_shards("new") == [0, 1, 3]
    old, new = store.outputs("old"), store.outputs("new")
    assert len(new) == len(old[old["shard"] != 2])
    assert store.reuse_shards("new", {0: "k0", 1: "k1", 3: "k3"}) == []  # already complete: nothing copied twice
    assert len(store.outputs("new")) == len(new)


def test_a_cascade_run_keeps_its_report_and_shard_counts(store, corpus):
    from falconer_core.cascade import CascadeReport, ShardCounts

    store.upsert_run("c", "execute", model_version="m/1")
    assert store.cascade_report("c") is None and store.cascade_counts("c") == ShardCounts()
    for shard, (band, llm) in enumerate([(3, 2), (1, 1)]):
        counts = ShardCounts(band_texts=band, llm_texts=llm, over_budget=band - llm, llm_usage={"calls": llm})
        store.commit_part("c", shard, _part(corpus, "c", shard), work_key=f"c{shard}", cascade=counts)
    store.commit_part("c", 2, _part(corpus, "c", 2), work_key="c2")  # a proxy-only shard counts nothing
    totals = store.cascade_counts("c")
    assert totals == ShardCounts(band_texts=4, llm_texts=3, over_budget=1, llm_usage={"calls": 3})
    kept = store.update_run_report("c", CascadeReport(llm_budget=10).with_counts(totals))
    assert kept == store.cascade_report("c") and kept.llm_texts == 3 and kept.llm_budget == 10
    assert store.run("c")["report"]["llm_texts"] == 3  # stored as the model's JSON
    with pytest.raises(ConfigError, match="credential"):
        store.update_run_report("c", CascadeReport(llm_usage={"api_key": "sk-x"}))


def test_a_silent_running_run_reads_stale(store):
    store.upsert_run("live", "execute")
    store.set_run_size("live", n_shards=4, n_texts=40)
    progress = store.run_progress(stale_after_seconds=3600).set_index("run_id")
    assert progress.loc["live", "status"] == "running" and progress.loc["live", "n_shards"] == 4
    assert store.run_progress(stale_after_seconds=0).set_index("run_id").loc["live", "status"] == "stale"
    store.set_run_status("live", "completed")
    assert store.run_progress(stale_after_seconds=0).set_index("run_id").loc["live", "status"] == "completed"


def test_a_version_1_store_is_upgraded_in_place(tmp_path):
    import duckdb

    path = tmp_path / "v1.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE falconer_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);"
            "INSERT INTO falconer_meta VALUES ('schema_version', '1');"
            "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, plan_hash VARCHAR, "
            "model_version VARCHAR, corpus_id VARCHAR, status VARCHAR NOT NULL, started_at TIMESTAMPTZ NOT NULL, "
            "finished_at TIMESTAMPTZ, params JSON);"
            "INSERT INTO runs VALUES ('old', 'execute', NULL, NULL, NULL, 'completed', now(), now(), NULL);"
            "CREATE TABLE run_shards (run_id VARCHAR NOT NULL, shard INTEGER NOT NULL, n_rows BIGINT NOT NULL, "
            "completed_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (run_id, shard));"
            "CREATE TABLE outputs (run_id VARCHAR NOT NULL, shard INTEGER NOT NULL, text_id VARCHAR NOT NULL, "
            "field VARCHAR NOT NULL, value VARCHAR, span_start INTEGER, span_end INTEGER, confidence DOUBLE, "
            "model_version VARCHAR, plan_hash VARCHAR, step VARCHAR, created_at TIMESTAMPTZ NOT NULL);"
            "INSERT INTO outputs VALUES ('old', 0, 't1', '_filter', 'true', NULL, NULL, NULL, NULL, NULL, NULL, now());"
        )
    with Store(path) as store:
        assert store.run("old")["status"] == "completed" and store.run("old")["heartbeat_at"] is None
        assert store.query("SELECT value FROM falconer_meta WHERE key = 'schema_version'")["value"].tolist() == ["4"]
        assert "work_key" in store.query("SELECT * FROM run_shards LIMIT 0").columns
        old = store.outputs("old")  # rows from before cascades read back, with no source or band
        assert len(old) == 1 and old["source"].isna().all() and old["in_band"].isna().all()
        assert store.run("old")["report"] is None
        assert store.run("old")["drift"] is None and store.drift("old") is None  # no drift check back then
