"""Corpus snapshots: streamed in chunks through the same checks as `load_corpus`, found again by
the file's fingerprint, read by row range or id, and keyed by content so grown corpora reuse work."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from falconer_core.corpus import CorpusSource, corpus_id, load_corpus, read_corpus_chunks, snapshot_corpus
from falconer_core.corpus.loading import _check_utf8
from falconer_core.errors import CorpusError
from tests.mining_corpus import tweets


def _csv(tmp_path, frame, name="tweets.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_chunks_pass_the_same_gate_and_number_rows_across_chunks(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text\n" + "".join(f"text {i}\n" for i in range(25)), "utf-8")
    chunks = list(read_corpus_chunks(path, chunk_rows=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert pd.concat(chunks)["id"].tolist() == [str(i) for i in range(25)]
    assert pd.concat(chunks, ignore_index=True).equals(load_corpus(path))


def test_snapshot_matches_load_corpus_and_is_found_again_without_reading(tmp_path):
    path = _csv(tmp_path, tweets(120))
    source = CorpusSource(path=str(path), id_column="tweet_id")
    snap = snapshot_corpus(source, tmp_path / "corpora", chunk_rows=50)
    frame = load_corpus(path, id_column="tweet_id")
    assert snap.n_texts == 120 and snap.columns == ["mentions_place", "people"]
    assert snap.corpus_id == corpus_id(frame)  # one definition of "the same texts"
    assert pq.ParquetFile(snap.path).metadata.num_rows == 120
    assert snap.read_rows(45, 55)["id"].tolist() == frame["id"][45:55].tolist()
    assert snap.ids() == frame["id"].tolist()
    picked = snap.rows_by_id(["t007", "t002"])
    assert picked["id"].tolist() == ["t007", "t002"] and picked["mentions_place"].tolist() == ["false", "true"]
    with pytest.raises(CorpusError, match="t999"):
        snap.rows_by_id(["t999"])
    before = os.stat(snap.path).st_mtime_ns
    assert snapshot_corpus(source, tmp_path / "corpora") == snap  # same file version: nothing read or written
    assert os.stat(snap.path).st_mtime_ns == before


def test_a_changed_file_is_a_new_corpus_version_and_unchanged_shards_keep_their_digest(tmp_path):
    frame = tweets(100)
    path = _csv(tmp_path, frame)
    source = CorpusSource(path=str(path), id_column="tweet_id")
    first = snapshot_corpus(source, tmp_path / "corpora")
    grown = pd.concat([frame, tweets(110).iloc[100:]], ignore_index=True)
    grown.to_csv(path, index=False)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    second = snapshot_corpus(source, tmp_path / "corpora")
    assert second.corpus_id != first.corpus_id and second.n_texts == 110 and second.path != first.path
    assert second.shard_digests(25)[:4] == first.shard_digests(25)  # the first 100 texts did not change
    assert len(second.shard_digests(25)) == 5


def test_duplicate_ids_across_chunks_are_refused_and_leave_no_snapshot(tmp_path):
    frame = tweets(30)
    frame.loc[25, "tweet_id"] = "t003"
    path = _csv(tmp_path, frame)
    with pytest.raises(CorpusError, match=r"'t003' ×2"):
        snapshot_corpus(CorpusSource(path=str(path), id_column="tweet_id"), tmp_path / "corpora", chunk_rows=10)
    assert not list((tmp_path / "corpora").iterdir())


def test_columns_that_appear_late_are_a_clear_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c", "label": true}\n', "utf-8")
    with pytest.raises(CorpusError, match=r"\['label'\] first appear at row 2"):
        snapshot_corpus(CorpusSource(path=str(path)), tmp_path / "corpora", chunk_rows=2)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 20])
def test_utf8_check_streams_across_block_edges(tmp_path, block):
    path = tmp_path / "t.csv"
    path.write_bytes("text\nnaïve café ☕\n".encode() + b"ok\nbad \xff here\n")
    with pytest.raises(CorpusError, match=r"byte 0xff at byte offset 29 \(line 4\)"):
        _check_utf8(path, block=block)
    good = tmp_path / "good.csv"
    good.write_bytes(b"\xef\xbb\xbf" + "text\nnaïve café ☕ 😀\n".encode())
    _check_utf8(good, block=block)


def test_shard_digests_stream_the_definition_stored_work_keys_were_made_with(tmp_path):
    """Streamed digests equal DuckDB's md5(string_agg(id:text_hash)), row group edges or not, so
    shards done before this change are still reused."""
    import duckdb

    from falconer_core.corpus import snapshot as snapshot_module

    source = CorpusSource(path=str(_csv(tmp_path, tweets(130))), id_column="tweet_id")
    for size, group in ((25, 10_000), (7, 10), (1000, 3), (10, 10)):
        snapshot_module.ROW_GROUP_ROWS, saved = group, snapshot_module.ROW_GROUP_ROWS
        try:
            snap = snapshot_corpus(source, tmp_path / f"c{group}")
            found = snap.shard_digests(size)
        finally:
            snapshot_module.ROW_GROUP_ROWS = saved
        assert pq.ParquetFile(snap.path).metadata.num_row_groups == -(-130 // group)
        with duckdb.connect() as con:
            expected = [digest for _, digest in con.execute(
                "SELECT row // ? AS shard, md5(string_agg(id || ':' || text_hash, ',' ORDER BY row)) "
                "FROM read_parquet(?) GROUP BY shard ORDER BY shard", [size, snap.path]).fetchall()]
        assert found == expected and len(found) == -(-130 // size)


def test_the_id_check_runs_in_duckdb_under_a_memory_cap(tmp_path):
    """Uniqueness over the whole corpus is a capped, single-threaded DuckDB query that spills to
    disk (not a Python set of every id), and it still names the duplicates."""
    from falconer_core.corpus.snapshot import DUCKDB_MEMORY, _check_unique_ids, bounded_duckdb

    with bounded_duckdb(tmp_path / "spill") as con:
        limit, threads = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    assert threads == 1 and limit == "61.0 MiB" and DUCKDB_MEMORY == "64MB"  # DuckDB reports 64 MB in MiB
    frame = pd.DataFrame({"id": [f"i{k}" for k in range(5000)] + ["i17", "i4999"], "text": ["x"] * 5002})
    frame.to_parquet(tmp_path / "ids.parquet")
    pd.read_parquet(tmp_path / "ids.parquet").assign(row=range(5002)).to_parquet(tmp_path / "rows.parquet")
    with pytest.raises(CorpusError, match=r"2 id\(s\) occur more than once \('i17' ×2, 'i4999' ×2\)"):
        _check_unique_ids(tmp_path / "rows.parquet", "rows.parquet")
