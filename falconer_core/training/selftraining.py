"""Self-training: learning from the corpus's unlabeled texts as well as the annotated sample.

A real run annotates about 5% of a corpus and leaves the rest unlabeled. After the fine-tune on
the annotations, the model (the teacher) labels a capped, seeded pool of unlabeled texts for
every instruction the examples teach, and only what it is sure of is used. For spans that is
decided per word by default (`pseudo_unit="word"`): a word the teacher is unsure of (neither
P(inside) nor P(outside) reaches `pseudo_confidence`) is left out of the loss, and a text with
fewer than half its words sure is dropped. Requiring every word of a text to be sure instead
(`"text"`) keeps mostly easy texts the teacher already gets right; on BC2GM (512 gold, 4,000
unlabeled, seed 0) that gained nothing, per word +0.008 F1. Label answers are kept by their
confidence. Kept answers are balanced to the annotations' share of positives (sure answers are
mostly negatives). The model then trains on the annotations plus these pseudo-labels,
continuing from the teacher, and the new weights are kept only if they beat the teacher on the
same dev split (with no dev split, at small sizes, they are always kept); with more rounds,
each round's result is the next teacher.

Deterministic per seed, and bounded: the pool is capped (`TrainingSettings.max_unlabeled`) and
each round trains a fixed number of epochs (`self_training_epochs`).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from falconer_core.metamodel.decoding import span_confidence, spans_from_word_probs
from falconer_core.metamodel.prompt import B, I
from falconer_core.training.loop import (
    Budget,
    check_examples,
    dev_score,
    encode_examples,
    fit,
    is_positive,
    replay_budget,
    replay_draw,
    set_span_thresholds,
    split_with_replay,
)
from falconer_core.training.settings import SelfTrainingSummary, TrainingSettings, TrainingSummary
from falconer_core.training.threads import pinned_threads, training_threads
from falconer_core.types import Example, LabelExample, SpanExample

log = logging.getLogger("falconer_core.metamodel")

#: An instruction is pseudo-labelled only if the examples ask it this often: a templated
#: per-span instruction ("What is Ada's profession?") is about one text, not about the corpus.
MIN_INSTRUCTION_EXAMPLES = 5
#: With word-level pseudo-labels, a text whose sure words are fewer than this share is dropped:
#: most of it would be ignored anyway, and what is left is too little context to trust.
MIN_KEPT_WORDS = 0.5


def unlabeled_pool(texts: Sequence[str], examples: Sequence[Example], cap: int, seed: int) -> list[str]:
    """Distinct non-empty texts not already among the examples, at most `cap`, drawn by `seed`
    (in the order given when all fit)."""
    known = {e.text for e in examples}
    seen: set[str] = set()
    pool = []
    for text in texts:
        if text.strip() and text not in known and text not in seen:
            seen.add(text)
            pool.append(text)
    if len(pool) > cap:
        chosen = sorted(random.Random(seed).sample(range(len(pool)), cap))
        pool = [pool[i] for i in chosen]
    return pool


def pseudo_label(
    metamodel, pool: list[str], examples: Sequence[Example], threshold: float, unit: str = "word"
) -> tuple[list[Example], dict[str, dict]]:
    """The teacher's sure answers on `pool` for each instruction the examples ask often enough,
    balanced to the examples' share of positives; and per instruction what was kept. Span
    answers are sure by `unit`: "text" (every word at `threshold`) or "word" (unsure words are
    ignored, texts that keep at least half their words count)."""
    kinds = {(type(e), e.instruction) for e in examples}
    counts = Counter((type(e), e.instruction) for e in examples)
    out: list[Example] = []
    stats: dict[str, dict] = {}
    for kind, instruction in sorted(kinds, key=lambda k: (k[0].__name__, k[1])):
        if counts[(kind, instruction)] < MIN_INSTRUCTION_EXAMPLES or not pool:
            continue
        gold = [e for e in examples if type(e) is kind and e.instruction == instruction]
        share = sum(map(is_positive, gold)) / len(gold)
        if kind is SpanExample:
            candidates = _span_answers(metamodel, pool, instruction, threshold, unit)
        else:
            candidates = _label_answers(metamodel, pool, instruction)
        minimum = MIN_KEPT_WORDS if kind is SpanExample and unit == "word" else threshold
        sure = [(c, e) for c, e in candidates if c >= minimum]
        kept = balance(sure, share)
        out += kept
        stats[instruction] = {
            "kind": "span" if kind is SpanExample else "label", "labelled": len(candidates), "sure": len(sure),
            "kept": len(kept), "kept_positive": sum(map(is_positive, kept)), "gold_positive_share": round(share, 4),
        }
    return out, stats


@dataclass(frozen=True)
class PseudoSpanExample(SpanExample):
    """A teacher's span answer whose unsure words (`ignored_words`, word positions) are left
    out of the loss: the sure words of a hard text still teach."""

    ignored_words: tuple[int, ...] = ()


def _span_answers(metamodel, pool: list[str], instruction: str, threshold: float, unit: str) -> list[tuple[float, Example]]:
    """(confidence, example) per text. By text: the confidence is the least sure word's, where a
    word's is P(inside) or P(outside), whichever it was decided as. By word: words below
    `threshold` are ignored, and the score is the share of words kept."""
    probs = metamodel.span_word_probs(pool, instruction, progress=False)
    out: list[tuple[float, Example]] = []
    for item, (encoded, word_probs) in sorted(probs.items()):
        spans = tuple(spans_from_word_probs(pool[item], encoded, word_probs, metamodel.span_threshold_for(instruction)))
        if unit == "text":
            out.append((span_confidence(word_probs), SpanExample(pool[item], instruction, spans)))
            continue
        inside = word_probs[:, B] + word_probs[:, I]
        unsure = tuple(int(w) for w in np.flatnonzero(np.maximum(inside, 1.0 - inside) < threshold))
        kept = 1.0 - len(unsure) / max(len(inside), 1)
        out.append((kept, PseudoSpanExample(pool[item], instruction, spans, unsure)))
    return out


def _label_answers(metamodel, pool: list[str], instruction: str) -> list[tuple[float, Example]]:
    results = metamodel.get_label(pool, instruction, progress=False)
    return [(r.confidence, LabelExample(text, instruction, r.value)) for text, r in zip(pool, results)]


def balance(sure: list[tuple[float, Example]], share: float) -> list[Example]:
    """As many of the surest answers as keep the positives at `share` of them (the most of
    each side that fits), in the order given."""
    positives = [i for i, (_, e) in enumerate(sure) if is_positive(e)]
    negatives = [i for i, (_, e) in enumerate(sure) if not is_positive(e)]
    if share <= 0:
        n_pos, n_neg = 0, len(negatives)
    elif share >= 1:
        n_pos, n_neg = len(positives), 0
    else:
        total = min(len(positives) / share, len(negatives) / (1 - share))
        n_pos, n_neg = min(len(positives), round(total * share)), min(len(negatives), round(total * (1 - share)))

    def surest(indices: list[int], n: int) -> list[int]:
        return sorted(indices, key=lambda i: (-sure[i][0], i))[:n]

    keep = set(surest(positives, n_pos)) | set(surest(negatives, n_neg))
    return [e for i, (_, e) in enumerate(sure) if i in keep]


def self_train(
    metamodel, examples: Sequence[Example], texts: Sequence[str], settings: TrainingSettings,
    replay: Sequence[Example] = (),
) -> SelfTrainingSummary:
    """Self-training rounds in place on a model already fine-tuned on `examples` and `replay`
    (by `train` with the same settings, so the dev split here is the same one), at the thread
    count the settings pin (called alone, as benchmarks do, it must not inherit the process's).
    Only the new task is pseudo-labelled; the replay pool keeps being drawn from each epoch."""
    with pinned_threads(training_threads(settings.threads)):
        return _self_train(metamodel, examples, texts, settings, replay)


def _self_train(
    metamodel, examples: Sequence[Example], texts: Sequence[str], settings: TrainingSettings,
    replay: Sequence[Example],
) -> SelfTrainingSummary:
    examples = list(examples)
    check_examples(examples + list(replay))
    started = time.perf_counter()
    rng = random.Random(settings.seed)
    train_set, replayed, dev = split_with_replay(examples, replay, settings, rng)  # the split `train` made
    pool = unlabeled_pool(texts, examples, settings.max_unlabeled, settings.seed)
    summary = SelfTrainingSummary(pool=len(pool))
    replay_windows = encode_examples(metamodel.encoder, replayed, settings.subtoken_labels)  # the same each round
    for round_ in range(settings.self_training_rounds):
        torch.manual_seed(settings.seed + 1 + round_)
        pseudo, stats = pseudo_label(metamodel, pool, train_set, settings.pseudo_confidence, settings.pseudo_unit)
        record: dict = {"pseudo_labels": len(pseudo), "instructions": stats}
        summary.rounds.append(record)
        if not pseudo:
            log.info("self-training round %d: no sure pseudo-labels; stopping", round_ + 1)
            break
        before = dev_score(metamodel, dev) if dev else None
        windows = encode_examples(metamodel.encoder, train_set + pseudo, settings.subtoken_labels)
        budget = Budget(settings.self_training_epochs, settings.self_training_epochs,
                        settings.learning_rate * settings.self_training_lr_scale)
        draws = [replay_draw(replay_windows, replay_budget(windows, settings), rng) for _ in range(budget.epochs)]
        run = TrainingSummary(n_train=len(train_set) + len(pseudo), n_dev=len(dev), n_replay=len(replayed))
        fit(metamodel, [windows + draw for draw in draws], dev, settings, budget, rng, run, start_score=before)
        improved = not dev or run.best_epoch > 0
        record.update({
            "dev_before": None if before is None else round(before, 5), "dev_scores": run.dev_scores,
            "train_loss": run.train_loss, "kept": improved,
        })
        log.info("self-training round %d: %d pseudo-labels, dev %s -> %s (%s)", round_ + 1, len(pseudo),
                 record["dev_before"], run.best_dev_score, "kept" if improved else "teacher kept")
        if not improved:
            break
        summary.kept_rounds += 1
        if settings.calibrate_threshold:
            threshold, own = set_span_thresholds(metamodel, dev)
            if threshold is not None:
                record["span_threshold"], record["span_thresholds"] = threshold, own
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


__all__ = ["MIN_INSTRUCTION_EXAMPLES", "PseudoSpanExample", "balance", "pseudo_label", "self_train", "unlabeled_pool"]
