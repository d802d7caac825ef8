"""Corpus loading: every format, the normalised frame, and every error a user can hit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from falconer_core.corpus import CorpusSchema, corpus_from_frame, corpus_id, load_corpus, validate_frame
from falconer_core.errors import CorpusError

ROWS = [
    {"doc": "a1", "text": "Great laptop, $999.", "gold": "yes"},
    {"doc": "a2", "text": "Terrible battery.", "gold": "no"},
    {"doc": "a3", "text": 'He said "hi", then left,\nlater.', "gold": "no"},
]


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _check_rows(df: pd.DataFrame) -> None:
    assert list(df.columns[:2]) == ["id", "text"]
    assert df["id"].tolist() == ["a1", "a2", "a3"]
    assert df["text"].tolist() == [r["text"] for r in ROWS]
    assert df["gold"].tolist() == ["yes", "no", "no"]
    assert str(df["id"].dtype) == "str" and str(df["text"].dtype) == "str"


# -- formats -------------------------------------------------------------------------------------


def test_csv(tmp_path):
    path = tmp_path / "c.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    _check_rows(load_corpus(path, id_column="doc"))


def test_tsv(tmp_path):
    path = tmp_path / "c.tsv"
    pd.DataFrame(ROWS).to_csv(path, index=False, sep="\t")
    _check_rows(load_corpus(path, id_column="doc"))


def test_jsonl(tmp_path):
    path = _write(tmp_path, "c.jsonl", "\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    _check_rows(load_corpus(path, id_column="doc"))


def test_parquet(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    _check_rows(load_corpus(path, id_column="doc"))


def test_txt_folder(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "b.txt").write_text("second\n", encoding="utf-8")
    (folder / "a.txt").write_text("first", encoding="utf-8")
    (folder / "notes.md").write_text("ignored", encoding="utf-8")
    df = load_corpus(folder)
    assert df["id"].tolist() == ["a", "b"]
    assert df["text"].tolist() == ["first", "second\n"]  # content verbatim: offsets stay true


def test_row_number_ids_and_text_column(tmp_path):
    path = _write(tmp_path, "c.csv", "body,label\nx,1\ny,0\n")
    df = load_corpus(path, text_column="body")
    assert df["id"].tolist() == ["0", "1"]
    assert df["text"].tolist() == ["x", "y"]
    assert "label" in df.columns and "body" not in df.columns


def test_null_texts_become_empty_but_na_words_stay(tmp_path):
    csv = load_corpus(_write(tmp_path, "c.csv", "text,k\n,1\nNA,2\nnull,3\n"))
    assert csv["text"].tolist() == ["", "NA", "null"]
    jsonl = load_corpus(_write(tmp_path, "c.jsonl", '{"text": null}\n{"text": "ok"}\n{"other": 1}\n'))
    assert jsonl["text"].tolist() == ["", "ok", ""]
    path = tmp_path / "c.parquet"
    pd.DataFrame({"text": ["a", None]}).to_parquet(path)
    assert load_corpus(path)["text"].tolist() == ["a", ""]


def test_ids_keep_zeros_and_numbers_become_strings(tmp_path):
    assert load_corpus(_write(tmp_path, "c.csv", "k,text\n007,a\n8,b\n"), id_column="k")["id"].tolist() == ["007", "8"]
    path = tmp_path / "c.parquet"
    pd.DataFrame({"k": [1, 2], "text": ["a", "b"]}).to_parquet(path)
    assert load_corpus(path, id_column="k")["id"].tolist() == ["1", "2"]


def test_utf8_bom_is_accepted(tmp_path):
    df = load_corpus(_write(tmp_path, "c.csv", b"\xef\xbb\xbftext\ncaf\xc3\xa9\n"))
    assert df["text"].tolist() == ["café"]


def test_corpus_from_frame_is_the_same_gate():
    df = corpus_from_frame(pd.DataFrame({"t": ["x", None]}), text_column="t")
    assert df["text"].tolist() == ["x", ""]
    with pytest.raises(CorpusError, match="empty"):
        corpus_from_frame(pd.DataFrame({"text": []}))


# -- corpus_id -----------------------------------------------------------------------------------


def test_corpus_id_is_a_stable_content_hash(tmp_path):
    path = tmp_path / "c.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    jsonl = _write(tmp_path, "c.jsonl", "\n".join(json.dumps(r) for r in ROWS))
    a = load_corpus(path, id_column="doc")
    assert corpus_id(a) == corpus_id(load_corpus(path, id_column="doc"))
    assert corpus_id(a) == corpus_id(load_corpus(jsonl, id_column="doc"))  # format does not count
    assert corpus_id(a) == corpus_id(a.assign(gold="changed"))  # gold labels do not count
    assert len(corpus_id(a)) == 16
    edited = a.copy()
    edited.loc[0, "text"] = "Great laptop, $998."
    assert corpus_id(edited) != corpus_id(a)
    # Length prefixes: moving characters between id and text changes the hash.
    assert corpus_id(pd.DataFrame({"id": ["ab"], "text": ["c"]})) != corpus_id(pd.DataFrame({"id": ["a"], "text": ["bc"]}))


# -- errors --------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match="corpus not found: .*nope.csv"):
        load_corpus(tmp_path / "nope.csv")


def test_unsupported_suffix(tmp_path):
    with pytest.raises(CorpusError, match=r"unsupported suffix '\.xlsx'.*\.csv.*\.jsonl.*\.parquet"):
        load_corpus(_write(tmp_path, "c.xlsx", "x"))


def test_missing_text_column_lists_columns(tmp_path):
    path = _write(tmp_path, "c.csv", "body,label\nx,1\n")
    with pytest.raises(CorpusError, match=r"no text column 'text'.*\['body', 'label'\].*--text-column"):
        load_corpus(path)


def test_missing_id_column_lists_columns(tmp_path):
    path = _write(tmp_path, "c.csv", "text,label\nx,1\n")
    with pytest.raises(CorpusError, match=r"no id column 'doc'.*\['text', 'label'\].*--id-column"):
        load_corpus(path, id_column="doc")


def test_unchosen_id_column_is_not_silently_hidden(tmp_path):
    with pytest.raises(CorpusError, match="id_column='id'"):
        load_corpus(_write(tmp_path, "c.csv", "id,text\nx,1\n"))


@pytest.mark.parametrize(
    ("name", "content"),
    [("c.csv", "text\n"), ("c.csv", ""), ("c.tsv", "text\tk\n"), ("c.jsonl", "\n\n")],
)
def test_empty_corpus(tmp_path, name, content):
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(_write(tmp_path, name, content))


def test_empty_parquet_and_folder(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"text": pd.Series([], dtype="str")}).to_parquet(path)
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "readme.md").write_text("x")
    with pytest.raises(CorpusError, match=r"no \.txt files \(found: \['readme.md'\]\)"):
        load_corpus(tmp_path / "folder")


def test_duplicate_ids_are_shown(tmp_path):
    path = _write(tmp_path, "c.csv", "k,text\na,1\nb,2\na,3\nc,4\nb,5\n")
    with pytest.raises(CorpusError, match=r"2 id\(s\) occur more than once \('a' ×2, 'b' ×2\)"):
        load_corpus(path, id_column="k")


def test_duplicate_ids_in_folder(tmp_path):
    (tmp_path / "x.txt").write_text("1")
    (tmp_path / "x.TXT").write_text("2")
    with pytest.raises(CorpusError, match="'x' ×2"):
        load_corpus(tmp_path)


def test_null_ids(tmp_path):
    path = _write(tmp_path, "c.jsonl", '{"k": "a", "text": "1"}\n{"k": null, "text": "2"}\n{"k": " ", "text": "3"}\n')
    with pytest.raises(CorpusError, match=r"2 row\(s\) have no id in column 'k' \(rows \[1, 2\]\)"):
        load_corpus(path, id_column="k")


@pytest.mark.parametrize("name", ["c.csv", "c.tsv", "c.jsonl"])
def test_undecodable_bytes_give_file_and_offset(tmp_path, name):
    header = b'{"text": "ok"}\n{"text": "caf' if name.endswith("jsonl") else b"text\nok\ncaf"
    path = _write(tmp_path, name, header + b"\xe9\n")
    offset, line = len(header), header.count(b"\n") + 1
    with pytest.raises(CorpusError, match=rf"{name} is not valid UTF-8: byte 0xe9 at byte offset {offset} \(line {line}\)"):
        load_corpus(path)


def test_undecodable_txt_file(tmp_path):
    (tmp_path / "good.txt").write_text("fine")
    (tmp_path / "bad.txt").write_bytes(b"ab\xff")
    with pytest.raises(CorpusError, match=r"bad.txt is not valid UTF-8: byte 0xff at byte offset 2"):
        load_corpus(tmp_path)


def test_unparseable_jsonl_line_number(tmp_path):
    path = _write(tmp_path, "c.jsonl", '{"text": "a"}\n\n{"text": "b",}\n')
    with pytest.raises(CorpusError, match=r"c.jsonl, line 3: not valid JSON"):
        load_corpus(path)
    path = _write(tmp_path, "d.jsonl", '{"text": "a"}\n["b"]\n')
    with pytest.raises(CorpusError, match=r"line 2: expected a JSON object, got list"):
        load_corpus(path)


def test_malformed_csv_and_parquet(tmp_path):
    with pytest.raises(CorpusError, match="does not parse as CSV"):
        load_corpus(_write(tmp_path, "c.csv", 'text\n"unclosed\n'))
    with pytest.raises(CorpusError, match="cannot be read as Parquet"):
        load_corpus(_write(tmp_path, "c.parquet", "not parquet"))


def test_folder_refuses_column_options(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(CorpusError, match="folder of .txt files"):
        load_corpus(tmp_path, id_column="k")


def test_corpus_schema_rejects_bad_frames_clearly():
    bad = pd.DataFrame({"id": ["a", "a", ""], "text": ["x", "y", "z"]})
    with pytest.raises(CorpusError, match=r"(?s)column 'id'.*field_uniqueness.*\['a', 'a'\].*ids must be non-empty.*rows \[2\]"):
        validate_frame(CorpusSchema, bad, what="test corpus")
