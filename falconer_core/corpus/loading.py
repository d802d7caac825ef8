"""Reading a corpus from disk into one normalised frame: `id` and `text`, plus any other columns.

Every later stage (sampling, annotation, execution, the store) relies on three promises this
module keeps, so none of them has to re-check: ids are unique non-empty strings, texts are
strings (a missing text becomes "" and simply gets empty results downstream), and the frame
has at least one row. Files are decoded strictly as UTF-8, so bad bytes fail here with their
position instead of turning into silent replacement characters in mined outputs.

Extra columns are kept untouched: they can carry gold labels for the human annotator.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_lib
import pyarrow.parquet as pq

from falconer_core.corpus.identity import CorpusIdentity, text_hash
from falconer_core.errors import CorpusError, FalconerError
from falconer_core.hashing import content_hash

ID = "id"
TEXT = "text"

#: Suffixes `load_corpus` reads, and the reader each one uses.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

_SHOW = 5  # how many offending ids/rows an error message lists


def _nonempty(series: pd.Series) -> pd.Series:
    return series.str.strip().str.len() > 0


#: The contract of a loaded corpus; extra columns are allowed (gold labels, metadata).
CorpusSchema = pa.DataFrameSchema(
    {
        ID: pa.Column(
            str,
            nullable=False,
            unique=True,
            checks=pa.Check(_nonempty, name="non_empty_id", error="ids must be non-empty"),
        ),
        TEXT: pa.Column(str, nullable=False),
    },
    strict=False,
    name="CorpusSchema",
)


def validate_frame(
    schema: pa.DataFrameSchema,
    frame: pd.DataFrame,
    *,
    what: str,
    error: type[FalconerError] = CorpusError,
) -> pd.DataFrame:
    """Validate `frame` against `schema`, turning pandera's report into one readable error.

    Shared by the corpus and the store so every schema failure reads the same way: which
    column, which check, how many rows and a few examples.
    """
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise error(f"{what} does not match {schema.name or 'its schema'}:\n"
                    f"{_describe_failures(exc.failure_cases)}") from None
    except pa.errors.SchemaError as exc:  # raised eagerly for some structural problems
        raise error(f"{what} does not match {schema.name or 'its schema'}: {exc}") from None


def _describe_failures(cases: pd.DataFrame) -> str:
    lines: list[str] = []
    frame_checks: set[str] = set()
    for (context, column, check), group in cases.groupby(
        ["schema_context", "column", "check"], dropna=False, sort=False
    ):
        rows = [i for i in group["index"].drop_duplicates().tolist() if not _is_missing(i)]
        if context == "DataFrameSchema" and rows:
            # A frame-wide check reports every column of a failing row: name the rows once.
            if check not in frame_checks:
                frame_checks.add(check)
                lines.append(f"  - {check}: {len(rows)} row(s), e.g. rows {rows[:_SHOW]}")
            continue
        examples = [str(v) for v in group["failure_case"].tolist()[:_SHOW]]
        where = f" (rows {rows[:_SHOW]})" if rows else ""
        target = f"column '{column}'" if isinstance(column, str) else "frame"
        lines.append(f"  - {target}: {check}: {len(group)} failure(s), e.g. {examples}{where}")
    return "\n".join(lines)


def file_fingerprint(path: str | Path) -> str:
    """A cheap identity of what is on disk at `path` (size and modification time of the file, or
    of every .txt file of a folder): it changes when the content is replaced or edited."""
    path = Path(path)
    if not path.exists():
        return "missing"
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    stats = [(f.name, st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()]]
    return content_hash(str(path.resolve()), stats)


#: Rows per chunk when a corpus is streamed (`read_corpus_chunks`): bounded memory on any size.
CHUNK_ROWS = 50_000


def load_corpus(
    path: str | Path,
    text_column: str = TEXT,
    id_column: str | None = None,
) -> pd.DataFrame:
    """Read a CSV, TSV, JSONL or Parquet file, or a folder of .txt files, as one corpus frame.

    The result has `id` and `text` first (both strings), then every other column of the
    source. With `id_column=None`, ids are the 0-based row numbers as strings; for a folder,
    ids are the file stems. Raises `CorpusError` saying what is wrong and how to fix it.
    For corpora that do not fit in memory, snapshot them instead (`snapshot_corpus`).
    """
    source = str(path)
    chunks = list(read_corpus_chunks(path, text_column, id_column))
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    _check_ids(frame[ID], source=source)
    return frame


def read_corpus_chunks(
    path: str | Path,
    text_column: str = TEXT,
    id_column: str | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The corpus as checked frames of at most `chunk_rows` rows, in file order.

    Each chunk passes the same gate as `corpus_from_frame` (row-number ids continue across
    chunks, errors name rows of the whole file); ids unique across chunks is the caller's
    check (`load_corpus` in memory, `snapshot_corpus` in DuckDB). Raises `CorpusError`.
    """
    path = Path(path)
    first_row = 0
    text, ids = (TEXT, ID) if path.is_dir() else (text_column, id_column)  # a folder: stems and contents
    for raw in _raw_chunks(path, text_column, id_column, chunk_rows):
        if len(raw) == 0:
            continue
        raw.index = pd.RangeIndex(first_row, first_row + len(raw))
        yield corpus_from_frame(raw, text_column=text, id_column=ids, source=str(path), first_row=first_row)
        first_row += len(raw)
    if first_row == 0:
        raise CorpusError(
            f"corpus {path} is empty (no rows); add at least one text, or check that the "
            "file is the one you meant"
        )


def _raw_chunks(path: Path, text_column: str, id_column: str | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Unchecked frames straight from the file, chunk by chunk."""
    if not path.exists():
        raise CorpusError(
            f"corpus not found: {path} (resolved to {path.resolve()}); check the path, or pass "
            "a folder of .txt files"
        )
    if path.is_dir():
        if id_column is not None or text_column != TEXT:
            raise CorpusError(
                f"{path} is a folder of .txt files: ids are file stems and texts are file "
                "contents, so text/id columns cannot be chosen; drop --text-column/--id-column"
            )
        yield _read_txt_folder(path)
        return

    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise CorpusError(
            f"cannot read {path.name}: unsupported suffix '{path.suffix}'. Supported: "
            f"{', '.join(sorted(SUPPORTED_SUFFIXES))}, or a folder of .txt files; convert the "
            "file or rename it if its content is one of these formats"
        )
    if fmt == "parquet":
        yield from _read_parquet(path, chunk_rows)
        return
    _check_utf8(path)
    if fmt == "jsonl":
        yield from _read_jsonl(path, chunk_rows)
    else:
        yield from _read_delimited(path, sep="," if fmt == "csv" else "\t", chunk_rows=chunk_rows,
                                   string_columns=[c for c in (text_column, id_column) if c])


def corpus_from_frame(
    frame: pd.DataFrame,
    text_column: str = TEXT,
    id_column: str | None = None,
    *,
    source: str = "<frame>",
    first_row: int = 0,
) -> pd.DataFrame:
    """Normalise an in-memory frame into a corpus, with the same checks as `load_corpus`
    (`first_row` numbers the rows of a chunk that starts further down a file).

    This is the Python-API entry point (a user with a DataFrame need not write a file) and the
    last step of every reader, so every corpus passes the same gate.
    """
    if len(frame) == 0:
        raise CorpusError(
            f"corpus {source} is empty (no rows); add at least one text, or check that the "
            "file is the one you meant"
        )
    columns = [str(c) for c in frame.columns]
    frame = frame.copy()
    frame.columns = columns
    if text_column not in columns:
        raise CorpusError(
            f"corpus {source} has no text column '{text_column}'; available columns: "
            f"{columns}. Pass the right one with text_column= (CLI: --text-column)"
        )
    if id_column is not None and id_column not in columns:
        raise CorpusError(
            f"corpus {source} has no id column '{id_column}'; available columns: {columns}. "
            "Pass the right one with id_column= (CLI: --id-column), or leave it out to number "
            "the rows"
        )
    if id_column is None and ID in columns:
        raise CorpusError(
            f"corpus {source} has a column named '{ID}' but no id column was chosen, so ids "
            f"would be row numbers and hide it; pass id_column='{ID}' (CLI: --id-column {ID}) "
            "to use it, or rename that column"
        )
    if text_column != TEXT and TEXT in columns:
        raise CorpusError(
            f"corpus {source} uses '{text_column}' as its text column but also has a column "
            f"named '{TEXT}', which would be overwritten; rename one of them"
        )

    if id_column is None:
        ids = pd.Series([str(i) for i in range(first_row, first_row + len(frame))], index=frame.index, dtype="str")
    else:
        ids = _ids_as_strings(frame[id_column], source=source, id_column=id_column)
    texts = _texts_as_strings(frame[text_column], source=source)

    rest = frame.drop(columns=[c for c in {text_column, id_column} if c is not None])
    out = pd.concat(
        [pd.DataFrame({ID: ids, TEXT: texts}, index=frame.index), rest], axis=1
    ).reset_index(drop=True)
    _check_ids(out[ID], source=source)
    return validate_frame(CorpusSchema, out, what=f"corpus {source}")


def corpus_id(frame: pd.DataFrame) -> str:
    """A stable content hash of a corpus's ids and texts, in order (16 hex characters).

    Only `id` and `text` count: editing a gold-label column does not make a new corpus. The
    same as a snapshot's `corpus_id` for the same texts (see `corpus.identity`).
    """
    for column in (ID, TEXT):
        if column not in frame.columns:
            raise CorpusError(f"corpus_id needs a corpus frame with '{column}'; got {list(frame.columns)}")
    identity = CorpusIdentity()
    identity.update([str(i) for i in frame[ID]], [text_hash(str(t)) for t in frame[TEXT]])
    return identity.hexdigest()


# ---------------------------------------------------------------------------------------------
# Readers: each returns a raw frame; corpus_from_frame does the checks.
# ---------------------------------------------------------------------------------------------


def _decode_strict(data: bytes, path: Path) -> str:
    """Decode UTF-8 strictly (a leading BOM is allowed) and say where the first bad byte is."""
    offset = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[offset:].decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data, offset + exc.start, exc.reason, line_offset=0) from None


def _not_utf8(path: Path, data: bytes, position: int, reason: str, *, line_offset: int, base: int = 0) -> CorpusError:
    line = line_offset + data[:position].count(b"\n") + 1
    return CorpusError(
        f"{path} is not valid UTF-8: byte 0x{data[position]:02x} at byte offset {base + position} "
        f"(line {line}) cannot be decoded ({reason}). Re-save the file as UTF-8 (e.g. "
        f"`iconv -f latin1 -t utf-8 {path.name}`)"
    )


def _check_utf8(path: Path, block: int = 1 << 20) -> None:
    """Stream the file through a strict UTF-8 decoder, so bad bytes fail with their position
    before any parsing (a parser would report them less clearly, or not at all)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    lines = consumed = 0
    pending = b""  # bytes the decoder holds back (a character cut by the block edge)
    with path.open("rb") as handle:
        while True:
            data = handle.read(block)
            final = not data
            start = 3 if consumed == 0 and data.startswith(codecs.BOM_UTF8) else 0
            try:
                decoder.decode(data[start:], final=final)
            except UnicodeDecodeError as exc:
                window = pending + data[start:]
                raise _not_utf8(path, window, exc.start, exc.reason, line_offset=lines,
                                base=consumed + start - len(pending)) from None
            held = decoder.getstate()[0]
            lines += (pending + data[start:])[: len(pending) + len(data) - start - len(held)].count(b"\n")
            pending = held
            consumed += len(data)
            if final:
                return


def _read_delimited(path: Path, *, sep: str, chunk_rows: int, string_columns: list[str]) -> Iterator[pd.DataFrame]:
    # Only empty cells are missing: a text that reads "NA" or "null" is a real text. The text
    # and id columns stay strings so ids like "007" keep their zeros.
    kind = "TSV (tab-separated)" if sep == "\t" else "CSV (comma-separated)"
    try:
        reader = pd.read_csv(
            path, sep=sep, dtype={c: str for c in string_columns}, keep_default_na=False, na_values=[""],
            quoting=csv.QUOTE_MINIMAL, encoding="utf-8-sig", chunksize=chunk_rows,
        )
        with reader:
            yield from reader
    except pd.errors.EmptyDataError:
        raise CorpusError(
            f"corpus {path} is empty (no header and no rows); add a header line and texts"
        ) from None
    except pd.errors.ParserError as exc:
        raise CorpusError(
            f"{path} does not parse as {kind}: {exc}. Check the delimiter and quoting (a text "
            "with the delimiter or a newline must be quoted)"
        ) from None


def _read_jsonl(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    records: list[dict] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(
                    f"{path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno}); each "
                    "line must be one JSON object, e.g. {\"text\": \"...\"}"
                ) from None
            if not isinstance(record, dict):
                raise CorpusError(
                    f"{path}, line {number}: expected a JSON object, got {type(record).__name__}; "
                    "each line must be one JSON object, e.g. {\"text\": \"...\"}"
                )
            records.append(record)
            if len(records) == chunk_rows:
                yield pd.DataFrame.from_records(records)
                records = []
    if records:
        yield pd.DataFrame.from_records(records)


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        for batch in batches:
            yield batch.to_pandas()
    except (OSError, pa_lib.ArrowException) as exc:  # pyarrow raises several types for a corrupt file
        raise CorpusError(f"{path} cannot be read as Parquet: {exc}. Check the file is Parquet") from None


def _read_txt_folder(folder: Path) -> pd.DataFrame:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        others = sorted(p.name for p in folder.iterdir())[:_SHOW]
        raise CorpusError(
            f"corpus folder {folder} holds no .txt files (found: {others or 'nothing'}); put one "
            "text per .txt file there, or point at a CSV/TSV/JSONL/Parquet file instead"
        )
    return pd.DataFrame(
        {ID: [p.stem for p in files], TEXT: [_decode_strict(p.read_bytes(), p) for p in files]}
    )


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _ids_as_strings(column: pd.Series, *, source: str, id_column: str) -> pd.Series:
    def convert(value: object) -> str | None:
        if _is_missing(value):
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))  # 7.0 from a numeric column with gaps means id "7"
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="strict")
        text = str(value)
        return text if text.strip() else None

    try:
        ids = column.map(convert)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"corpus {source}: an id in column '{id_column}' is not valid UTF-8 ({exc})"
        ) from None
    missing = ids.isna()
    if missing.any():
        rows = missing[missing].index.tolist()
        raise CorpusError(
            f"corpus {source}: {len(rows)} row(s) have no id in column '{id_column}' (rows "
            f"{rows[:_SHOW]}); fill them in, or leave out id_column to number the rows"
        )
    return ids.astype("str")


def _texts_as_strings(column: pd.Series, *, source: str) -> pd.Series:
    def convert(value: object) -> str:
        if _is_missing(value):
            return ""
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="strict")
        return value if isinstance(value, str) else str(value)

    try:
        return column.map(convert).astype("str")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"corpus {source}: a text is not valid UTF-8 (byte offset {exc.start} within that "
            "text); re-encode the column as UTF-8"
        ) from None


def _check_ids(ids: pd.Series, *, source: str) -> None:
    counts = ids.value_counts()
    duplicated = counts[counts > 1]
    if len(duplicated):
        shown = ", ".join(f"'{i}' ×{n}" for i, n in duplicated.head(_SHOW).items())
        raise CorpusError(
            f"corpus {source}: {len(duplicated)} id(s) occur more than once ({shown}"
            f"{', …' if len(duplicated) > _SHOW else ''}); ids must be unique — fix the id "
            "column, or leave out id_column to number the rows"
        )
