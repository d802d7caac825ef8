"""Fine-tuning the metamodel: label and span examples mixed in one run, a held-out dev split
scored each epoch, early stopping, and the best epoch's weights kept. Deterministic per seed."""

from __future__ import annotations

import logging
import random
import time

import torch
from tqdm.auto import tqdm

from falconer_core.errors import ConfigError
from falconer_core.metamodel.batching import collate
from falconer_core.metamodel.prompt import IGNORE, B, I, O, Window, word_tags
from falconer_core.metamodel.settings import DEFAULT_EPOCHS, TrainingSettings, TrainingSummary
from falconer_core.types import Example, LabelExample, SpanExample

log = logging.getLogger("falconer_core.metamodel")


def train(metamodel, examples: list[Example], settings: TrainingSettings) -> TrainingSummary:
    """Run the fine-tune in place on `metamodel` and return its summary."""
    if not examples:
        raise ConfigError("fine_tune needs at least one example")
    bad = [e for e in examples if not isinstance(e, (LabelExample, SpanExample))]
    if bad:
        raise ConfigError(f"examples must be LabelExample or SpanExample; got {type(bad[0]).__name__}")
    started = time.perf_counter()
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)

    # 1. split: a dev set to choose the epoch, when there is enough data for one
    order = list(range(len(examples)))
    rng.shuffle(order)
    n_dev = int(len(examples) * settings.dev_fraction)
    n_dev = n_dev if n_dev >= settings.min_dev_examples and n_dev < len(examples) else 0
    dev = [examples[i] for i in order[:n_dev]]
    train_set = [examples[i] for i in order[n_dev:]]
    summary = TrainingSummary(n_train=len(train_set), n_dev=len(dev))

    # 2. encode every example into labelled windows
    windows = encode_examples(metamodel.encoder, train_set, settings.subtoken_labels)
    steps_per_epoch = -(-len(windows) // settings.batch_size)
    epochs, min_epochs = epoch_budget(settings, steps_per_epoch)
    total = steps_per_epoch * epochs

    # 3. optimiser and schedule
    from transformers import get_linear_schedule_with_warmup

    model = metamodel.model
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if metamodel.shape_embedding is not None:
        groups.append({
            "params": list(metamodel.shape_embedding.parameters()), "weight_decay": 0.0,
            "lr": settings.learning_rate * settings.shape_lr_scale,
        })
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate)
    modules = metamodel.modules()
    parameters = [p for module in modules for p in module.parameters()]
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * settings.warmup_ratio), total)

    # 4. epochs, each scored on dev; keep the best weights

    best_state, since_best = None, 0
    bar = tqdm(range(epochs), desc="fine-tune", unit="epoch", disable=not settings.progress)
    for epoch in bar:
        for module in modules:
            module.train()
        losses = []
        for batch_windows in length_bucketed_batches(windows, settings.batch_size, rng):
            batch = collate(batch_windows, metamodel.tokenizer.pad_token_id, metamodel.device)
            loss = metamodel.forward(batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        for module in modules:
            module.eval()
        summary.epochs_run = epoch + 1
        summary.train_loss.append(round(sum(losses) / max(len(losses), 1), 5))
        if not dev:
            log.info("epoch %d/%d: train loss %.4f", epoch + 1, epochs, summary.train_loss[-1])
            continue
        score = dev_score(metamodel, dev)
        summary.dev_scores.append(round(score, 5))
        log.info("epoch %d/%d: train loss %.4f, dev %.4f", epoch + 1, epochs, summary.train_loss[-1], score)
        bar.set_postfix(loss=summary.train_loss[-1], dev=round(score, 4))
        if summary.best_dev_score is None or score > summary.best_dev_score:
            summary.best_dev_score, summary.best_epoch, since_best = score, epoch + 1, 0
            best_state = [{k: v.detach().clone() for k, v in module.state_dict().items()} for module in modules]
        else:
            since_best += 1
            if since_best >= settings.patience and epoch + 1 >= min_epochs:
                break
    if best_state is not None:
        for module, state in zip(modules, best_state):
            module.load_state_dict(state)
    else:
        summary.best_epoch = summary.epochs_run

    # 5. calibrate the span threshold on dev: small samples make the tagger shy of recall
    if settings.calibrate_threshold:
        summary.span_threshold = calibrate_span_threshold(metamodel, [e for e in dev if isinstance(e, SpanExample)])
        if summary.span_threshold is not None:
            metamodel.config["span_threshold"] = summary.span_threshold
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


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
    the other O. Everything else is ignored."""
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
            for w in encoder.windows(item, text, "span", example.instruction):
                w.labels = [IGNORE] * len(w.input_ids)
                word = -1
                for t in range(w.token_start, w.token_end):
                    position = w.text_offset + t - w.token_start
                    if text.first_token_word[t] >= 0:
                        word = text.first_token_word[t]
                        w.labels[position] = tags[word]
                    elif subtoken_labels and word >= 0:
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


#: Thresholds on P(B) + P(I) tried by `calibrate_span_threshold`.
THRESHOLD_GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def calibrate_span_threshold(metamodel, dev: list[SpanExample], min_examples: int = 20) -> float | None:
    """The grid threshold with the best dev word-level F1 (ties go to 0.5, then to the
    higher one); None, leaving the threshold as it was, when dev is too small to trust."""
    from falconer_core.evaluation.metrics import word_f1
    from falconer_core.metamodel.decoding import spans_from_word_probs

    if len(dev) < min_examples:
        return None
    texts = [e.text for e in dev]
    probs = metamodel.span_word_probs(texts, [e.instruction for e in dev], progress=False)
    gold = [list(e.spans) for e in dev]

    def score(threshold: float) -> float:
        predicted = [spans_from_word_probs(texts[i], *probs[i], threshold) if i in probs else [] for i in range(len(texts))]
        return word_f1(predicted, gold, texts)["f1"]

    scored = {t: score(t) for t in THRESHOLD_GRID}
    best = max(scored.values())
    if scored[0.5] >= best - 1e-9:
        return 0.5
    return max(t for t, s in scored.items() if s >= best - 1e-9)
