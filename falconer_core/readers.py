"""Readers for the labelled data sets in `../shared/data`: gold examples to train and score on.

IOB/CoNLL token files (BC2GM, the Broad Twitter Corpus) become `SpanExample`s whose text is the
sentence's tokens joined by single spaces and whose spans are character offsets into that text,
so they compare directly with what `get_span` returns. The SMS spam collection becomes
`LabelExample`s. Files are read in place, strictly as UTF-8, and every problem is a
`CorpusError` that names the file and the line (or byte offset) to look at.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from falconer_core.errors import CorpusError
from falconer_core.types import LabelExample, Span, SpanExample

DEFAULT_SPAN_INSTRUCTION = "Extract the entity mentions."
DEFAULT_SMS_INSTRUCTION = "Is this message spam?"

_TAG = re.compile(r"^(?P<prefix>[BIES])(?:[-_](?P<type>.+))?$")


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence of a token file: its tokens, their IOB tags, and where it starts (1-based)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class DatasetSpec:
    """Where a span data set lives under the data folder and which instruction asks for it."""

    folder: str
    splits: dict[str, str]
    entity_types: tuple[str, ...] | None
    instruction: str


_BC2GM_SPLITS = {"train": "train.tsv", "dev": "devel.tsv", "test": "test.tsv"}
_BTC_SPLITS = {"train": "train.conll", "dev": "dev.conll", "test": "test.conll"}

DATASETS: dict[str, DatasetSpec] = {
    "bc2gm": DatasetSpec("bc2gm", _BC2GM_SPLITS, ("GENE",), "Extract the gene or protein mentions."),
    "btc-per": DatasetSpec("btc", _BTC_SPLITS, ("PER",), "Extract the names of people."),
    "btc-loc": DatasetSpec("btc", _BTC_SPLITS, ("LOC",), "Extract the names of locations."),
    "btc-org": DatasetSpec("btc", _BTC_SPLITS, ("ORG",), "Extract the names of organizations."),
}

# The data sets name their development split differently; accept any of the usual names.
_SPLIT_ALIASES = {"devel": "dev", "validation": "dev", "valid": "dev"}


# --------------------------------------------------------------------------------------------
# Files


def _read_text(path: str | Path) -> str:
    """Decode a whole file as strict UTF-8 (a leading BOM is dropped), or say where it breaks."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file; check the path or set FALCONER_DATA_DIR") from None
    except OSError as err:
        raise CorpusError(f"{path}: cannot be read ({err.strerror or err})") from err
    # Skip the BOM by hand: the utf-8-sig codec would count error offsets from after it.
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = skip + err.start
        line = data.count(b"\n", 0, offset) + 1
        raise CorpusError(
            f"{path}: not valid UTF-8 at byte offset {offset} (line {line}): {err.reason}; "
            "re-encode the file as UTF-8"
        ) from None


def _lines(text: str) -> list[str]:
    """Split on newlines only: `str.splitlines` would also split inside a tweet or an SMS at
    characters such as U+2028 or U+0085, shifting every line number after them."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# --------------------------------------------------------------------------------------------
# IOB / CoNLL token files


def read_tagged(path: str | Path) -> list[TaggedSentence]:
    """Read a token-per-line file into sentences of (token, tag) pairs.

    A line is `token<TAB>tag` (extra middle columns are ignored, the tag is the last one); a line
    with no tab falls back to whitespace-separated columns. Blank or whitespace-only lines and
    `-DOCSTART-` lines end a sentence. Tokens are stripped and inner whitespace runs become one
    space, so the joined text has single spaces only; tokens left empty are dropped.
    """
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def close() -> None:
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(tags), first_line))
        tokens.clear()
        tags.clear()

    for number, line in enumerate(_lines(_read_text(path)), start=1):
        if not line.strip() or line.split(maxsplit=1)[0] == "-DOCSTART-":
            close()
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 2 or not fields[-1].strip():
            raise CorpusError(
                f"{path}:{number}: expected 'token<TAB>tag', got {line!r}; "
                "separate sentences with a blank line"
            )
        tag = fields[-1].strip()
        if tag != "O" and not _TAG.match(tag):
            raise CorpusError(f"{path}:{number}: unknown tag {tag!r}; expected O, B-TYPE or I-TYPE")
        token = " ".join(fields[0].split())
        if not token:
            continue
        if not tokens:
            first_line = number
        tokens.append(token)
        tags.append(tag)
    close()
    return sentences


def tagged_spans(
    tokens: Sequence[str], tags: Sequence[str], entity_types: Iterable[str] | None = None
) -> tuple[str, list[tuple[str, Span]]]:
    """Join tokens with single spaces and turn their tags into typed character spans.

    A span opens at B- (or S-), or at an I- (or E-) that does not continue a span of the same
    type — IOB1 files and sloppy annotation both do that — and closes at O, at a new B-, at a
    change of type, or after E-/S-. Bare `B`/`I` tags have the type "". Only spans whose type is
    in `entity_types` are returned (None keeps all).
    """
    if len(tokens) != len(tags):
        raise CorpusError(f"{len(tokens)} tokens but {len(tags)} tags")
    wanted = None if entity_types is None else set(entity_types)
    starts: list[int] = []
    position = 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    text = " ".join(tokens)

    found: list[tuple[str, int, int]] = []  # (type, first token, last token)
    open_type: str | None = None
    for index, tag in enumerate(tags):
        match = _TAG.match(tag) if tag != "O" else None
        if match is None:
            if tag != "O":
                raise CorpusError(f"unknown tag {tag!r}; expected O, B-TYPE or I-TYPE")
            open_type = None
            continue
        prefix, kind = match["prefix"], match["type"] or ""
        if prefix in "IE" and open_type == kind:
            found[-1] = (kind, found[-1][1], index)
        else:
            found.append((kind, index, index))
        open_type = None if prefix in "ES" else kind

    spans = []
    for kind, first, last in found:
        if wanted is not None and kind not in wanted:
            continue
        start, end = starts[first], starts[last] + len(tokens[last])
        spans.append((kind, Span(text[start:end], start, end, 1.0)))
    return text, spans


def read_iob(
    path: str | Path,
    entity_types: Iterable[str] | None = None,
    instruction: str = DEFAULT_SPAN_INSTRUCTION,
) -> list[SpanExample]:
    """Read an IOB/CoNLL file as span examples: every sentence, with or without gold spans,
    since sentences without any are the negatives a span model must learn to leave alone."""
    types = None if entity_types is None else tuple(entity_types)
    examples = []
    for sentence in read_tagged(path):
        text, spans = tagged_spans(sentence.tokens, sentence.tags, types)
        examples.append(SpanExample(text, instruction, tuple(span for _, span in spans)))
    return examples


# --------------------------------------------------------------------------------------------
# SMS spam collection


def read_sms(path: str | Path, instruction: str = DEFAULT_SMS_INSTRUCTION) -> list[LabelExample]:
    """Read the SMS spam TSV (`label<TAB>msg`, ham/spam) as label examples, spam being True.

    Lines are split on their first tab by hand: messages hold quotes and tabs that a CSV reader
    would take as quoting or extra columns. The header line is optional.
    """
    examples = []
    for number, line in enumerate(_lines(_read_text(path)), start=1):
        if not line.strip():
            continue
        label, tab, message = line.partition("\t")
        label = label.strip().lower()
        if number == 1 and label == "label":
            continue
        if not tab or label not in ("ham", "spam"):
            raise CorpusError(
                f"{path}:{number}: expected 'ham<TAB>message' or 'spam<TAB>message', "
                f"got {line[:60]!r}"
            )
        examples.append(LabelExample(message, instruction, label == "spam"))
    if not examples:
        raise CorpusError(f"{path}: no messages found")
    return examples


# --------------------------------------------------------------------------------------------
# The shared data folder


def resolve_data_dir(path: str | Path | None = None) -> Path:
    """The data folder: `path` if given, else $FALCONER_DATA_DIR, else `shared/data` beside the
    repository, which is where the development machines keep it."""
    if path is not None:
        return Path(path)
    env = os.environ.get("FALCONER_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def load_split(name: str, split: str, data_dir: str | Path | None = None) -> list[SpanExample]:
    """Gold span examples of one split ("train", "dev"/"devel", "test") of a named data set."""
    spec = DATASETS.get(name)
    if spec is None:
        raise CorpusError(f"unknown data set {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    key = _SPLIT_ALIASES.get(split, split)
    if key not in spec.splits:
        raise CorpusError(f"{name} has no split {split!r}; choose one of {', '.join(spec.splits)}")
    path = resolve_data_dir(data_dir) / spec.folder / spec.splits[key]
    return read_iob(path, spec.entity_types, spec.instruction)


def load_sms(data_dir: str | Path | None = None) -> list[LabelExample]:
    """All 5,574 SMS messages with their spam label (the set has no predefined split)."""
    return read_sms(resolve_data_dir(data_dir) / "sms" / "sms.tsv")
