"""Fine-tuning the metamodel: label and span examples mixed in one run, a held-out dev split
scored each epoch, early stopping, and the best epoch's weights kept. Deterministic per seed.

Small dev splits are noisy, so two things keep them honest: the split is stratified by kind and
by "has a positive" (a random 50-example dev set can miss the rare positives entirely, and then
every epoch scores the same), and the epoch is chosen on dev F1 smoothed over neighbouring
epochs (`TrainingSettings.dev_smoothing`): the argmax of raw noisy scores favours a lucky epoch,
the argmax of a running mean favours a good stretch of training.

A re-tune that replays earlier tasks (`replay.py`) differs in four ways: each epoch adds a fresh
draw from their pool, whose windows also pull toward the parent's answers (`distill.py`), it
steps at `replay_lr_scale` of the rate, and its epochs are capped (`replay_epoch_cap`) while
early stopping watches the new task's part of dev only. When asked, its weights end blended back
toward the parent's as far as the new task allows (`blend.py`)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from falconer_core.errors import ConfigError
from falconer_core.metamodel.batching import collate
from falconer_core.metamodel.prompt import IGNORE, B, I, O, Window, word_tags
from falconer_core.training.blend import blend_with_parent, load_state, state_of
from falconer_core.training.distill import distill_loss, teach
from falconer_core.training.settings import DEFAULT_EPOCHS, TrainingSettings, TrainingSummary
from falconer_core.types import Example, LabelExample, SpanExample

log = logging.getLogger("falconer_core.metamodel")


def train(
    metamodel, examples: list[Example], settings: TrainingSettings, replay: Sequence[Example] = ()
) -> TrainingSummary:
    """Run the fine-tune in place on `metamodel` and return its summary. `replay`: the pool of
    earlier tasks' examples, drawn from afresh each epoch (see the module docstring)."""
    check_examples(list(examples) + list(replay))
    started = time.perf_counter()
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)

    # 1. split: a stratified dev set to choose the epoch, when there is enough data for one
    new, replayed, dev = split_with_replay(examples, replay, settings, rng)
    summary = TrainingSummary(n_train=len(new), n_dev=len(dev), n_replay=len(replayed))

    # 2. encode every example into labelled windows; draw each epoch's replay windows up front
    windows = encode_examples(metamodel.encoder, new, settings.subtoken_labels)
    replay_windows = encode_examples(metamodel.encoder, replayed, settings.subtoken_labels)
    budget_tokens = replay_budget(windows, settings)
    first = replay_draw(replay_windows, budget_tokens, rng)
    steps_per_epoch = -(-(len(windows) + len(first)) // settings.batch_size)
    epochs, min_epochs = epoch_budget(settings, steps_per_epoch)
    if replayed:  # never more than `replay_max_cost` times what the new task alone must train
        cap = replay_epoch_cap(settings, -(-len(windows) // settings.batch_size))
        epochs, min_epochs = min(epochs, cap), min(min_epochs, cap)
    draws = [first] + [replay_draw(replay_windows, budget_tokens, rng) for _ in range(epochs - 1)]
    if settings.replay_distill > 0 and replayed:  # the parent's answers on what will replay (`distill.py`)
        summary.distilled_windows = teach(metamodel, [w for draw in draws for w in draw], settings.batch_size)

    # 3. epochs, each scored on dev; keep the best (smoothed) epoch's weights
    epoch_windows = [windows + draw for draw in draws]
    rate = settings.learning_rate * (settings.replay_lr_scale if replayed else 1.0)
    new_dev = new_task_dev(dev, replay) if replayed else None
    parent = state_of(metamodel.modules()) if new_dev and settings.replay_blend else None
    fit(metamodel, epoch_windows, dev, settings, Budget(epochs, min_epochs, rate), rng, summary, stop_on=new_dev)
    summary.replayed_windows = sum(len(draw) for draw in draws[: summary.epochs_run])

    # 4. a replaying re-tune: blend back toward the parent as far as the new task allows (`blend.py`)
    if parent is not None:
        summary.blend = blend_with_parent(metamodel.modules(), parent, lambda: dev_score(metamodel, new_dev),
                                          settings.replay_blend, settings.replay_blend_tolerance)

    # 5. calibrate the span threshold on dev: small samples make the tagger shy of recall
    if settings.calibrate_threshold:
        summary.span_threshold, summary.span_thresholds = set_span_thresholds(metamodel, dev)
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def check_examples(examples: list[Example]) -> None:
    """Fail fast on what `fine_tune` cannot train on."""
    if not examples:
        raise ConfigError("fine_tune needs at least one example")
    bad = [e for e in examples if not isinstance(e, (LabelExample, SpanExample))]
    if bad:
        raise ConfigError(f"examples must be LabelExample or SpanExample; got {type(bad[0]).__name__}")


def is_positive(example: Example) -> bool:
    """A label example that holds, or a span example with something to extract."""
    return example.label if isinstance(example, LabelExample) else bool(example.spans)


def split_dev(examples: list[Example], settings: TrainingSettings, rng: random.Random) -> tuple[list[Example], list[Example]]:
    """(train, dev), each in input order. Dev takes `dev_fraction` of the examples (none when
    that is under `min_dev_examples`), drawn per stratum (label or span, positive or not) in
    proportion, with at least one from every stratum that has two examples or more: so dev has
    positives whenever the examples do."""
    n_dev = int(len(examples) * settings.dev_fraction)
    if n_dev < settings.min_dev_examples or n_dev >= len(examples):
        return list(examples), []
    strata: dict[tuple[str, bool], list[int]] = {}
    for i, example in enumerate(examples):
        strata.setdefault((type(example).__name__, is_positive(example)), []).append(i)
    keys = sorted(strata)
    for key in keys:
        rng.shuffle(strata[key])
    quota = {k: n_dev * len(strata[k]) / len(examples) for k in keys}
    take = {k: max(int(quota[k]), 1 if len(strata[k]) >= 2 else 0) for k in keys}
    while sum(take.values()) < n_dev:  # largest shortfall first; keep a stratum in train if it can be
        room = [k for k in keys if take[k] < len(strata[k]) - 1] or [k for k in keys if take[k] < len(strata[k])]
        take[max(room, key=lambda k: quota[k] - take[k])] += 1
    while sum(take.values()) > n_dev:  # the minimum of one overshot: trim the most over-served
        over = [k for k in keys if take[k] > 1] or [k for k in keys if take[k] > 0]
        take[max(over, key=lambda k: take[k] - quota[k])] -= 1
    held = {i for k in keys for i in strata[k][: take[k]]}
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


@dataclass(frozen=True)
class Budget:
    """How long one `fit` runs: most epochs, epochs before early stopping may stop, peak rate."""

    epochs: int
    min_epochs: int
    learning_rate: float


def split_with_replay(
    examples: Sequence[Example], replay: Sequence[Example], settings: TrainingSettings, rng: random.Random
) -> tuple[list[Example], list[Example], list[Example]]:
    """(new task's train, replay pool's train, dev): one stratified dev split over both, so the
    epoch is chosen on the earlier tasks too."""
    pooled = {id(e) for e in replay}
    train_set, dev = split_dev(list(examples) + list(replay), settings, rng)
    return [e for e in train_set if id(e) not in pooled], [e for e in train_set if id(e) in pooled], dev


def new_task_dev(dev: list[Example], replay: Sequence[Example]) -> list[Example] | None:
    """The new task's part of a dev split drawn over new + replay, for early stopping: the
    earlier tasks' dev scores keep creeping up as they are rehearsed, and stopping on them ran
    re-tunes twice as many epochs as the new task alone needs. None when dev has none of it."""
    pooled = {id(e) for e in replay}
    return [e for e in dev if id(e) not in pooled] or None


#: A forward pass costs about a third of a training step (forward and backward) on the same tokens.
FORWARD_COST = 1 / 3


def replay_epoch_cap(settings: TrainingSettings, steps_alone: int) -> int:
    """Most epochs of a replaying fine-tune: an epoch costs up to 1 + `replay_share` of one
    without replay (and, when it distils, the parent's forward pass over that share, once at
    most: `FORWARD_COST` of its training), and the new task alone trains at least its
    `min_epochs`, so this many keep the replaying run within `replay_max_cost` of the run
    without replay, by construction."""
    alone = epoch_budget(settings, steps_alone)[1]
    per_epoch = 1 + settings.replay_share * (1 + (FORWARD_COST if settings.replay_distill > 0 else 0))
    return max(1, int(settings.replay_max_cost * alone / per_epoch))


def replay_budget(windows: list[Window], settings: TrainingSettings) -> float:
    """Replay tokens an epoch may add: `replay_share` of the new windows' tokens."""
    return settings.replay_share * sum(len(w.input_ids) for w in windows)


def replay_draw(pool: list[Window], budget_tokens: float, rng: random.Random) -> list[Window]:
    """A random subset of the replay windows, in random order, stopping before the one that
    would pass `budget_tokens` (so short and long windows are drawn alike)."""
    order = list(range(len(pool)))
    rng.shuffle(order)
    drawn, tokens = [], 0
    for k in order:
        tokens += len(pool[k].input_ids)
        if tokens > budget_tokens:
            break
        drawn.append(pool[k])
    return drawn


def fit(
    metamodel, windows: list[list[Window]], dev: list[Example], settings: TrainingSettings, budget: Budget,
    rng: random.Random, summary: TrainingSummary, start_score: float | None = None,
    stop_on: list[Example] | None = None,
) -> None:
    """Train on `windows`, one list per epoch (the new task's plus that epoch's replay draw;
    AdamW, linear warm-up and decay) and keep the weights of the epoch with the best smoothed
    dev score, recording each epoch in `summary`. With `start_score` (the dev score of the
    weights as they are), training must beat it or the weights stay. With `stop_on` (a part of
    dev), early stopping watches that part's smoothed score instead of the whole dev's."""
    from transformers import get_linear_schedule_with_warmup

    model = metamodel.model
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if metamodel.shape_embedding is not None:
        groups.append({
            "params": list(metamodel.shape_embedding.parameters()), "weight_decay": 0.0,
            "lr": budget.learning_rate * settings.shape_lr_scale,
        })
    optimizer = torch.optim.AdamW(groups, lr=budget.learning_rate)
    modules = metamodel.modules()
    parameters = [p for module in modules for p in module.parameters()]
    total = sum(-(-len(w) // settings.batch_size) for w in windows[: budget.epochs])
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * settings.warmup_ratio), total)

    best_state = state_of(modules) if start_score is not None else None
    best, scores = start_score, []
    # early stopping's score: the whole dev's (as chosen), or `stop_on`'s
    watched_best, watched, since_best = (start_score if stop_on is None else None), [], 0
    bar = tqdm(range(budget.epochs), desc="fine-tune", unit="epoch", disable=not settings.progress)
    for epoch in bar:
        for module in modules:
            module.train()
        losses = []
        for batch_windows in length_bucketed_batches(windows[epoch], settings.batch_size, rng):
            batch = collate(batch_windows, metamodel.tokenizer.pad_token_id, metamodel.device)
            output = metamodel.forward(batch)
            loss = output.loss
            if settings.replay_distill > 0 and (kl := distill_loss(output.logits, batch)) is not None:
                loss = loss + settings.replay_distill * kl
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        for module in modules:
            module.eval()
        summary.epochs_run += 1
        summary.train_loss.append(round(sum(losses) / max(len(losses), 1), 5))
        if not dev:
            log.info("epoch %d/%d: train loss %.4f", epoch + 1, budget.epochs, summary.train_loss[-1])
            continue
        scores.append(dev_score(metamodel, dev))
        smoothed = smoothed_score(scores, settings.dev_smoothing)
        summary.dev_scores.append(round(scores[-1], 5))
        log.info("epoch %d/%d: train loss %.4f, dev %.4f (smoothed %.4f)", epoch + 1, budget.epochs,
                 summary.train_loss[-1], scores[-1], smoothed)
        bar.set_postfix(loss=summary.train_loss[-1], dev=round(scores[-1], 4))
        if best is None or smoothed > best:
            best = smoothed
            summary.best_dev_score, summary.best_epoch = round(smoothed, 5), summary.epochs_run
            best_state = state_of(modules)
        if stop_on is not None:
            watched.append(dev_score(metamodel, stop_on))
        watching = smoothed if stop_on is None else smoothed_score(watched, settings.dev_smoothing)
        if watched_best is None or watching > watched_best:
            watched_best, since_best = watching, 0
        else:
            since_best += 1
            if since_best >= settings.patience and epoch + 1 >= budget.min_epochs:
                break
    if best_state is not None:
        load_state(modules, best_state)
    elif not dev:
        summary.best_epoch = summary.epochs_run


def smoothed_score(scores: list[float], window: int) -> float:
    """Mean of the last `window` dev scores (fewer at the start): the latest epoch's score,
    steadied by its neighbours."""
    recent = scores[-window:]
    return sum(recent) / len(recent)


def epoch_budget(settings: TrainingSettings, steps_per_epoch: int) -> tuple[int, int]:
    """(most epochs, epochs before early stopping may stop): explicit `epochs` are obeyed;
    otherwise small data gets enough epochs for `min_steps` optimiser steps."""
    if settings.epochs is not None:
        return settings.epochs, min(settings.min_epochs, settings.epochs)
    for_steps = -(-settings.min_steps // steps_per_epoch)
    return max(DEFAULT_EPOCHS, for_steps), max(settings.min_epochs, for_steps)


def encode_examples(encoder, examples: list[Example], subtoken_labels: bool = True) -> list[Window]:
    """Windows with gold tags: span words get B/I/O on their first sub-token (and, with
    `subtoken_labels`, I/O on the rest); label examples tag the 'yes' or the 'no' choice B and
    the other O. Everything else is ignored, and so are the `ignored_words` of a
    `PseudoSpanExample`."""
    if not examples:
        return []
    encoded = encoder.encode_texts([e.text for e in examples])
    out: list[Window] = []
    for item, (example, text) in enumerate(zip(examples, encoded)):
        if isinstance(example, LabelExample):
            for w in encoder.windows(item, text, "label", example.instruction):
                w.labels = [IGNORE] * len(w.input_ids)
                yes, no = w.choice_positions
                w.labels[yes], w.labels[no] = (B, O) if example.label else (O, B)
                out.append(w)
        else:
            tags = word_tags(text, [(s.start, s.end) for s in example.spans])
            for word in getattr(example, "ignored_words", ()):  # a pseudo-label's unsure words teach nothing
                tags[word] = IGNORE
            for w in encoder.windows(item, text, "span", example.instruction):
                w.labels = [IGNORE] * len(w.input_ids)
                word = -1
                for t in range(w.token_start, w.token_end):
                    position = w.text_offset + t - w.token_start
                    if text.first_token_word[t] >= 0:
                        word = text.first_token_word[t]
                        w.labels[position] = tags[word]
                    elif subtoken_labels and word >= 0 and tags[word] != IGNORE:
                        w.labels[position] = O if tags[word] == O else I
                out.append(w)
    return out


def length_bucketed_batches(windows: list[Window], size: int, rng: random.Random):
    """Shuffle, sort within large pools by length (less padding), then shuffle the batches."""
    order = list(range(len(windows)))
    rng.shuffle(order)
    pool = size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda k: len(windows[k].input_ids))
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    for batch in batches:
        yield [windows[k] for k in batch]


def dev_score(metamodel, dev: list[Example]) -> float:
    """Mean of word-level F1 over span examples and macro-F1 over label examples."""
    from falconer_core.evaluation.metrics import label_metrics, word_f1

    scores = []
    spans = [e for e in dev if isinstance(e, SpanExample)]
    labels = [e for e in dev if isinstance(e, LabelExample)]
    if spans:
        texts = [e.text for e in spans]
        predicted = metamodel.get_span(texts, [e.instruction for e in spans], progress=False)
        scores.append(word_f1(predicted, [list(e.spans) for e in spans], texts)["f1"])
    if labels:
        predicted = metamodel.get_label([e.text for e in labels], [e.instruction for e in labels], progress=False)
        gold = [e.label for e in labels]
        positive = label_metrics(predicted, gold)["f1"]
        negative = label_metrics([not p for p in predicted], [not g for g in gold])["f1"]
        scores.append((positive + negative) / 2)
    return sum(scores) / len(scores)


#: Thresholds on P(B) + P(I) tried by `calibrate_span_thresholds`.
THRESHOLD_GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def calibrate_span_thresholds(
    metamodel, dev: list[SpanExample], min_examples: int = 20
) -> tuple[float | None, dict[str, float]]:
    """(the grid threshold with the best word-level F1 over all of dev's span examples, and one
    per instruction that has `min_examples` of its own when dev asks more than one), from one
    forward pass. Ties go to 0.5, then to the higher threshold. (None, {}), leaving the
    thresholds as they were, when dev is too small to trust. Why per instruction: after a
    re-tune one threshold served every span step the model learned, so a step's threshold
    depended on which other steps it had learned."""
    from falconer_core.evaluation.metrics import word_f1
    from falconer_core.metamodel.decoding import spans_from_word_probs

    if len(dev) < min_examples:
        return None, {}
    texts = [e.text for e in dev]
    probs = metamodel.span_word_probs(texts, [e.instruction for e in dev], progress=False)
    gold = [list(e.spans) for e in dev]

    def best(items: list[int]) -> float:
        def score(threshold: float) -> float:
            predicted = [spans_from_word_probs(texts[i], *probs[i], threshold) if i in probs else [] for i in items]
            return word_f1(predicted, [gold[i] for i in items], [texts[i] for i in items])["f1"]

        scored = {t: score(t) for t in THRESHOLD_GRID}
        top = max(scored.values())
        if scored[0.5] >= top - 1e-9:
            return 0.5
        return max(t for t, s in scored.items() if s >= top - 1e-9)

    asks: dict[str, list[int]] = {}
    for i, example in enumerate(dev):
        asks.setdefault(example.instruction, []).append(i)
    own = {ask: best(items) for ask, items in sorted(asks.items()) if len(items) >= min_examples} if len(asks) > 1 else {}
    return best(list(range(len(dev)))), own


def set_span_thresholds(metamodel, dev: list[Example]) -> tuple[float | None, dict[str, float]]:
    """Calibrate on dev's span examples and store the thresholds in the model's config (saved
    with it): the overall one, and those of instructions with enough dev examples, which replace
    any from an earlier fine-tune (its weights are gone)."""
    overall, own = calibrate_span_thresholds(metamodel, [e for e in dev if isinstance(e, SpanExample)])
    if overall is not None:
        metamodel.config["span_threshold"] = overall
        metamodel.config["span_thresholds"] = own
    return overall, own
