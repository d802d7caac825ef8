"""Readers: small hand-written files for the rules, and a smoke read of the real shared data."""

from pathlib import Path

import pytest

from falconer_core.errors import CorpusError
from falconer_core.readers import (
    DATASETS,
    load_sms,
    load_split,
    read_iob,
    read_sms,
    read_tagged,
    resolve_data_dir,
    tagged_spans,
)
from falconer_core.types import LabelExample, Span, SpanExample
from tests.conftest import SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data folder not present")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---- IOB: spans from tags ------------------------------------------------------------------


def test_bc2gm_style_file_gives_text_and_offsets(tmp_path):
    path = write(
        tmp_path,
        "genes.tsv",
        "positive\tO\nfor\tO\nS\tB-GENE\n-\tI-GENE\n100\tI-GENE\nin\tO\n\n"
        "p53\tB-GENE\nbinds\tO\nMDM2\tB-GENE\n\n",
    )
    examples = read_iob(path, instruction="Extract genes.")
    assert examples == [
        SpanExample("positive for S - 100 in", "Extract genes.", (Span("S - 100", 13, 20),)),
        SpanExample("p53 binds MDM2", "Extract genes.", (Span("p53", 0, 3), Span("MDM2", 10, 14))),
    ]


def test_i_without_b_starts_a_span_and_type_switch_splits():
    text, spans = tagged_spans(
        ["Obama", "visited", "New", "York", "Times", "Square"],
        ["I-PER", "O", "B-ORG", "I-ORG", "I-LOC", "I-LOC"],
    )
    assert text == "Obama visited New York Times Square"
    assert [(kind, span.text, span.start, span.end) for kind, span in spans] == [
        ("PER", "Obama", 0, 5),
        ("ORG", "New York", 14, 22),
        ("LOC", "Times Square", 23, 35),
    ]


def test_adjacent_b_tags_make_separate_spans_and_bare_tags_work():
    _, spans = tagged_spans(["a", "b", "c", "d"], ["B", "B", "I", "O"])
    assert [(kind, span.text) for kind, span in spans] == [("", "a"), ("", "b c")]


def test_iobes_tags_close_at_e_and_s():
    _, spans = tagged_spans(["a", "b", "c", "d"], ["B-X", "E-X", "S-X", "I-X"])
    assert [span.text for _, span in spans] == ["a b", "c", "d"]


def test_entity_type_filter_keeps_only_chosen_types(tmp_path):
    path = write(
        tmp_path, "tweets.conll", "Ann\tB-PER\nin\tO\nParis\tB-LOC\nat\tO\nUN\tB-ORG\n"
    )
    (only_loc,) = read_iob(path, entity_types=["LOC"])
    assert only_loc.spans == (Span("Paris", 7, 12),)
    (everything,) = read_iob(path)
    assert [span.text for span in everything.spans] == ["Ann", "Paris", "UN"]


def test_trailing_sentence_docstart_and_stray_whitespace(tmp_path):
    path = write(
        tmp_path,
        "messy.conll",
        "-DOCSTART-\tO\n\n"
        "  Hello \tO\n"  # padded token
        "ke  s\tO\n"  # inner double space
        "\tO\n"  # empty token: dropped
        "Bob\tB-PER \r\n"  # padded tag, CRLF
        "   \n\n\n"  # whitespace-only line is a boundary; repeated blanks add nothing
        "Last\tO\n"
        "one\tB-PER",  # no newline at the end of the file
    )
    sentences = read_tagged(path)
    assert [s.tokens for s in sentences] == [("Hello", "ke s", "Bob"), ("Last", "one")]
    assert [s.line for s in sentences] == [3, 10]
    first, last = read_iob(path)
    assert first.text == "Hello ke s Bob"
    assert first.spans == (Span("Bob", 11, 14),)
    assert last.spans == (Span("one", 5, 8),)


def test_sentences_without_entities_are_kept_as_negatives(tmp_path):
    path = write(tmp_path, "plain.tsv", "nothing\tO\nhere\tO\n")
    assert read_iob(path) == [SpanExample("nothing here", read_iob(path)[0].instruction, ())]


def test_space_separated_columns_are_accepted(tmp_path):
    path = write(tmp_path, "spaces.conll", "EU B-ORG\nrejects O\nGerman B-MISC\n")
    (example,) = read_iob(path)
    assert [span.text for span in example.spans] == ["EU", "German"]


@pytest.mark.parametrize(
    ("content", "where"),
    [("good\tO\nlonely\n", ":2:"), ("a\tO\n\nb\tX-PER\n", ":3:"), ("a\tO\nb\t \n", ":2:")],
)
def test_malformed_iob_lines_name_file_and_line(tmp_path, content, where):
    path = write(tmp_path, "bad.tsv", content)
    with pytest.raises(CorpusError, match=rf"bad\.tsv{where}"):
        read_iob(path)


def test_undecodable_bytes_name_the_byte_offset(tmp_path):
    path = write(tmp_path, "latin1.tsv", b"ok\tO\ncaf\xe9\tO\n")
    with pytest.raises(CorpusError, match=r"latin1\.tsv.*byte offset 8 \(line 2\)"):
        read_iob(path)


def test_utf8_bom_is_not_part_of_the_first_token(tmp_path):
    path = write(tmp_path, "bom.tsv", "\ufeffZürich\tB-LOC\n".encode())
    assert read_iob(path)[0].spans == (Span("Zürich", 0, 6),)


def test_byte_offset_counts_from_the_start_of_the_file_even_after_a_bom(tmp_path):
    path = write(tmp_path, "bom.tsv", b"\xef\xbb\xbfok\tO\n\xff\tO\n")
    with pytest.raises(CorpusError, match=r"byte offset 8 \(line 2\)"):
        read_iob(path)


def test_missing_file_is_a_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_iob(tmp_path / "absent.tsv")


# ---- SMS -------------------------------------------------------------------------------------


def test_sms_reader_keeps_quotes_and_tabs_inside_messages(tmp_path):
    path = write(
        tmp_path,
        "sms.tsv",
        'label\tmsg\nham\t"Hi" she said, "ok\nspam\tWIN \u00a3100\tnow!\n\nHAM\tlast line',
    )
    assert read_sms(path) == [
        LabelExample('"Hi" she said, "ok', "Is this message spam?", False),
        LabelExample("WIN \u00a3100\tnow!", "Is this message spam?", True),
        LabelExample("last line", "Is this message spam?", False),
    ]


def test_sms_line_separator_inside_a_message_does_not_split_it(tmp_path):
    path = write(tmp_path, "sms.tsv", "ham\tone\u2028two\nspam\tthree\n")
    assert [e.text for e in read_sms(path, instruction="spam?")] == ["one\u2028two", "three"]


@pytest.mark.parametrize("line", ["maybe\tsome text", "no tab at all"])
def test_sms_malformed_line_names_file_and_line(tmp_path, line):
    path = write(tmp_path, "sms.tsv", f"label\tmsg\nham\tfine\n{line}\n")
    with pytest.raises(CorpusError, match=r"sms\.tsv:3:"):
        read_sms(path)


def test_sms_missing_or_empty_file(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_sms(tmp_path / "nope.tsv")
    with pytest.raises(CorpusError, match="no messages"):
        read_sms(write(tmp_path, "empty.tsv", "label\tmsg\n"))


# ---- data folder and named data sets ---------------------------------------------------------


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FALCONER_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("FALCONER_DATA_DIR")
    assert resolve_data_dir() == Path(__file__).resolve().parents[2] / "shared" / "data"


def test_load_split_uses_the_dataset_spec(tmp_path):
    (tmp_path / "btc").mkdir()
    write(tmp_path / "btc", "dev.conll", "Ann\tB-PER\nin\tO\nParis\tB-LOC\n")
    (example,) = load_split("btc-loc", "devel", data_dir=tmp_path)
    assert example.instruction == DATASETS["btc-loc"].instruction
    assert example.spans == (Span("Paris", 7, 12),)


def test_load_split_rejects_unknown_names(tmp_path):
    with pytest.raises(CorpusError, match="unknown data set"):
        load_split("conll03", "train", data_dir=tmp_path)
    with pytest.raises(CorpusError, match="no split"):
        load_split("bc2gm", "holdout", data_dir=tmp_path)


# ---- the real shared files -------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize(
    ("name", "split", "sentences", "spans"),
    [
        ("bc2gm", "train", 12_574, 15_197),
        ("bc2gm", "dev", 2_519, 3_061),
        ("bc2gm", "test", 5_038, 6_325),
        ("btc-per", "train", 6_338, 4_084),
        ("btc-loc", "train", 6_338, 2_030),
        ("btc-org", "train", 6_338, 2_665),
        ("btc-per", "test", 2_001, 2_650),  # one tweet is split by a whitespace-only line
    ],
)
def test_real_splits_have_expected_counts_and_exact_offsets(name, split, sentences, spans):
    examples = load_split(name, split, data_dir=SHARED_DATA)
    assert len(examples) == sentences
    assert sum(len(e.spans) for e in examples) == spans  # one span per B- tag
    for example in examples:
        assert example.text and example.text == " ".join(example.text.split())
        for span in example.spans:
            assert example.text[span.start : span.end] == span.text
            assert span.confidence == 1.0


@needs_data
def test_real_sms_collection():
    examples = load_sms(SHARED_DATA)
    assert len(examples) == 5_574
    assert sum(e.label for e in examples) == 747
    assert examples[0].text.startswith("Go until jurong point")
    assert all(e.instruction == "Is this message spam?" for e in examples)
