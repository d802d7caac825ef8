"""Continual re-tuning: one metamodel learns task after task (BC2GM genes -> BTC persons -> SMS
spam -> the demo plan on BTC), with and without replay of the earlier tasks (the sampling the
flows use, `falconer_core.training.replay.sample_replay`). For every task: F1 of its own
specialist (fine-tuned from the base), of the sequential model right after it learned the task
and of the final model, each with a 95% bootstrap interval over test texts; forward transfer at
64 annotations (the sequence's model so far vs the base); training time with and without replay
(wall and this process's CPU seconds: on a shared machine the CPU time is the fair ratio).

    python benchmarks/continual.py                       # 512 annotations, seeds 0 1 2 (hours on CPU)
    python benchmarks/continual.py --size 32 --seeds 0 --test-size 50 --epochs 1   # a smoke run
    # seeds in parallel, one core each, then one table from their files:
    OMP_NUM_THREADS=1 python benchmarks/continual.py --seeds 1 --out continual-seed1 &
    python benchmarks/continual.py --summarise results/continual-seed*.json   # same seed twice: merged, later wins
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import common  # noqa: F401
import numpy as np
from common import save, subset

from falconer_core.evaluation.metrics import covered_words, word_offsets
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_sms, load_split
from falconer_core.training import TrainingSettings
from falconer_core.training.replay import sample_replay
from falconer_core.types import Example, LabelExample, SpanExample

TEST_SEED = 12345
SPECIALIST_DATASETS = {"genes": "bc2gm", "persons": "btc-per"}  # named as precision.py looks them up
PLACE = "Does this tweet mention a place?"  # the demo plan's steps (falconer_core/data/demo_plan.yaml)
PEOPLE = "Extract the names of people."


@dataclass
class Task:
    """One task of the sequence: its training examples (one list per annotated text) and a scorer
    giving per-test-text (tp, fp, fn) counts, one row per scored part (a plan step)."""

    name: str
    train: list[list[Example]]
    counts: Callable[[Metamodel], np.ndarray]  # (texts, parts, 3)

    def examples(self, n: int | None = None) -> list[Example]:
        return [e for text in self.train[:n] for e in text]


def span_counts(model: Metamodel, texts: list[str], instruction: str, gold: list[list]) -> np.ndarray:
    """Per text: words covered by predicted and gold spans, as (tp, fp, fn)."""
    predicted = model.get_span(texts, instruction, progress=False) if texts else []
    out = np.zeros((len(texts), 3))
    for k, (mine, theirs, text) in enumerate(zip(predicted, gold, texts)):
        words = word_offsets(text)
        a, b = covered_words(mine, words), covered_words(theirs, words)
        out[k] = (len(a & b), len(a - b), len(b - a))
    return out


def label_counts(model: Metamodel, texts: list[str], instruction: str, gold: list[bool]) -> np.ndarray:
    """Per text: the positive class's (tp, fp, fn)."""
    predicted = [bool(r) for r in model.get_label(texts, instruction, progress=False)]
    return np.array([(p and g, p and not g, g and not p) for p, g in zip(predicted, gold)], dtype=float)


def span_task(name: str, data: str, size: int, test_size: int, seed: int) -> Task:
    train = subset(load_split(data, "train"), size, seed=1000 + seed)
    test = subset(load_split(data, "test"), test_size, seed=TEST_SEED)
    texts, gold, instruction = [e.text for e in test], [list(e.spans) for e in test], test[0].instruction
    return Task(name, [[e] for e in train], lambda m: span_counts(m, texts, instruction, gold)[:, None, :])


def spam_task(size: int, test_size: int, seed: int) -> Task:
    examples = load_sms()
    order = list(range(len(examples)))
    random.Random(TEST_SEED).shuffle(order)
    test = [examples[i] for i in order[:test_size]]
    train = subset([examples[i] for i in order[test_size:]], size, seed=1000 + seed)
    texts, gold, instruction = [e.text for e in test], [e.label for e in test], test[0].instruction
    return Task("spam", [[e] for e in train], lambda m: label_counts(m, texts, instruction, gold)[:, None, :])


def demo_task(size: int, test_size: int, seed: int) -> Task:
    """The demo plan on BTC: "mentions a place?" (gold: a LOC span) on every tweet, then the
    people (PER spans) of the tweets that pass that filter, as the plan runs."""
    def tweets(split: str):
        places, people = load_split("btc-loc", split), load_split("btc-per", split)  # one file, same order
        return [(p.text, bool(p.spans), list(q.spans)) for p, q in zip(places, people)]

    def annotated(text: str, place: bool, people: list) -> list[Example]:
        return [LabelExample(text, PLACE, place)] + ([SpanExample(text, PEOPLE, tuple(people))] if place else [])

    train = subset(tweets("train"), size, seed=1000 + seed)
    test = subset(tweets("test"), test_size, seed=TEST_SEED)

    def counts(model: Metamodel) -> np.ndarray:
        out = np.zeros((len(test), 2, 3))
        out[:, 0] = label_counts(model, [t for t, _, _ in test], PLACE, [p for _, p, _ in test])
        passed = [k for k, (_, place, _) in enumerate(test) if place]
        out[passed, 1] = span_counts(model, [test[k][0] for k in passed], PEOPLE, [test[k][2] for k in passed])
        return out

    return Task("demo", [annotated(*t) for t in train], counts)


def make_task(name: str, size: int, test_size: int, seed: int) -> Task:
    if name == "genes":
        return span_task("genes", "bc2gm", size, test_size, seed)
    if name == "persons":
        return span_task("persons", "btc-per", size, test_size, seed)
    if name == "spam":
        return spam_task(size, test_size, seed)
    if name == "demo":
        return demo_task(size, test_size, seed)
    raise SystemExit(f"unknown task {name!r}: choose from genes, persons, spam, demo")


def f1_with_interval(counts: np.ndarray, replicates: int = 1000) -> dict[str, float]:
    """Mean over parts of the micro F1, with a 95% percentile bootstrap over test texts."""
    def f1(c: np.ndarray) -> float:
        totals = c.sum(axis=0)  # (parts, 3)
        tp, fp, fn = totals[:, 0], totals[:, 1], totals[:, 2]
        denominator = 2 * tp + fp + fn
        return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)))

    rng = np.random.default_rng(0)
    draws = [f1(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(replicates)]
    return {"f1": round(f1(counts), 4), "lo": round(float(np.percentile(draws, 2.5)), 4),
            "hi": round(float(np.percentile(draws, 97.5)), 4)}


def train(model: Metamodel, examples: list[Example], settings: TrainingSettings, replay: list[Example] = ()) -> dict:
    """Fine-tune in place; its wall and CPU seconds, epochs and replayed windows."""
    wall, cpu = time.perf_counter(), time.process_time()
    summary = model.fine_tune(examples, settings, replay=replay)
    return {"seconds": round(time.perf_counter() - wall, 2), "cpu_seconds": round(time.process_time() - cpu, 2),
            "epochs": summary.epochs_run, "replayed_windows": summary.replayed_windows,
            "distilled_windows": summary.distilled_windows, "blend": summary.blend,
            "span_thresholds": summary.span_thresholds}


def specialists_from(path: Path | None, seed: int) -> dict[str, dict]:
    """Specialist F1s of `seed` from an earlier results file: they do not depend on replay, so a
    re-run of the sequences need not train them again (the file is named in the results)."""
    if path is None:
        return {}
    found = json.loads(Path(path).read_text())
    runs = dict(zip(found["seeds"], found["runs"]))
    return {task: {k: row[k] for k in ("specialist", "specialist_cost") if k in row}
            for task, row in runs.get(seed, {}).items() if "specialist" in row}


def sequence_settings(args: argparse.Namespace, seed: int = 0) -> TrainingSettings:
    """The training settings every fine-tune of this run uses, from the command line."""
    return TrainingSettings(seed=seed, progress=False, epochs=args.epochs, replay_cap=args.replay_cap,
                            replay_share=args.replay_share, replay_blend=args.replay_blend,
                            replay_lr_scale=args.replay_lr_scale, replay_distill=args.replay_distill)


def run_seed(names: list[str], args: argparse.Namespace, seed: int, folder: Path) -> dict:
    """Specialists, the two sequences (with and without replay), and forward transfer, for one seed."""
    tasks = [make_task(n, args.size, args.test_size, seed) for n in names]
    settings = sequence_settings(args, seed)
    out: dict[str, dict] = {t.name: {} for t in tasks}
    earlier = specialists_from(args.specialists_from, seed)
    for task in tasks:
        if task.name in earlier and task.name not in args.train_specialists:  # the same seed's, measured earlier
            out[task.name].update(earlier[task.name])
            continue
        specialist = Metamodel.from_base(seed=seed)
        out[task.name]["specialist_cost"] = train(specialist, task.examples(), settings)
        out[task.name]["specialist"] = f1_with_interval(task.counts(specialist))
        if args.save_specialists and task.name in SPECIALIST_DATASETS:  # the checkpoints precision.py reuses
            specialist.save(Path(args.save_specialists) / f"{SPECIALIST_DATASETS[task.name]}-{args.size}-seed{seed}")
        print(f"  seed {seed} {task.name}: specialist {out[task.name]['specialist']}", flush=True)
    for replay in (True, False) if seed in args.baseline_seeds else (True,):
        mode = "replay" if replay else "no_replay"
        model = Metamodel.from_base(seed=seed)
        for k, task in enumerate(tasks):
            pools = {t.name: t.examples() for t in tasks[:k]}
            extra, _ = sample_replay(pools, settings) if replay else ([], {})
            if k <= args.start_after and replay and args.start_from:  # an earlier run's model after task k
                model = Metamodel.load(Path(args.start_from) / f"seed{seed}" / f"after-{k}")
            else:
                out[task.name][f"{mode}_cost"] = train(model, task.examples(), settings, extra)
            out[task.name][f"{mode}_pool"] = len(extra)
            out[task.name][f"{mode}_after"] = f1_with_interval(task.counts(model))
            if replay and (k + 1 < len(tasks) or args.keep_models):
                model.save(folder / f"after-{k}")
            print(f"  seed {seed} {task.name} ({mode}): right after {out[task.name][f'{mode}_after']}", flush=True)
        for task in tasks:
            out[task.name][f"{mode}_final"] = f1_with_interval(task.counts(model))
    for k, task in enumerate(tasks[1:] if args.transfer_size else [], 1):  # --transfer-size 0: skipped
        few = task.examples(args.transfer_size)
        from_sequence = Metamodel.load(folder / f"after-{k - 1}")
        train(from_sequence, few, settings)
        from_base = Metamodel.from_base(seed=seed)
        train(from_base, few, settings)
        out[task.name]["transfer"] = {"from_sequence": f1_with_interval(task.counts(from_sequence)),
                                      "from_base": f1_with_interval(task.counts(from_base))}
    return out


def summarise(names: list[str], runs: list[dict]) -> dict[str, dict]:
    """3-seed means of every F1 and time, and what the final model keeps of each specialist."""
    def mean(path: Callable[[dict], float | None]) -> float | None:
        values = []
        for run in runs:
            try:
                values.append(path(run))
            except KeyError:  # a part this seed did not run (e.g. no baseline)
                continue
        values = [v for v in values if v is not None]
        return round(statistics.fmean(values), 4) if values else None

    summary = {}
    for name in names:
        row = {key: mean(lambda r, key=key: r[name][key]["f1"]) for key in
               ("specialist", "replay_after", "replay_final", "no_replay_after", "no_replay_final")}
        for key in ("specialist", "replay", "no_replay"):
            row[f"{key}_seconds"] = mean(lambda r, key=key: r[name][f"{key}_cost"]["seconds"])
            row[f"{key}_cpu_seconds"] = mean(lambda r, key=key: r[name][f"{key}_cost"]["cpu_seconds"])
        both = [r for r in runs if "no_replay_cost" in r[name] and "replay_cost" in r[name]]  # seeds that trained both
        row["cpu_time_ratio"] = (round(statistics.fmean(r[name]["replay_cost"]["cpu_seconds"] for r in both)
                                       / statistics.fmean(r[name]["no_replay_cost"]["cpu_seconds"] for r in both), 2)
                                 if both else None)
        for side in ("from_sequence", "from_base"):
            row[f"transfer_{side}"] = mean(lambda r, side=side: r[name].get("transfer", {}).get(side, {}).get("f1"))
        for mode in ("replay", "no_replay"):
            final, own = row[f"{mode}_final"], row["specialist"]
            row[f"{mode}_kept"] = round(final / own, 3) if final is not None and own else None
        alone = [r for r in runs if "specialist_cost" in r[name] and "replay_cost" in r[name]]
        row["cpu_vs_specialist"] = (round(statistics.fmean(r[name]["replay_cost"]["cpu_seconds"] for r in alone)
                                          / statistics.fmean(r[name]["specialist_cost"]["cpu_seconds"] for r in alone), 2)
                                    if alone else None)  # the new task alone, from the base
        row["time_ratio"] = (round(statistics.fmean(r[name]["replay_cost"]["seconds"] for r in both)
                                   / statistics.fmean(r[name]["no_replay_cost"]["seconds"] for r in both), 2)
                             if both else None)
        summary[name] = row
    return summary


def print_table(summary: dict[str, dict]) -> None:
    columns = [("task", 8), ("special.", 9), ("R after", 8), ("R final", 8), ("R kept", 7), ("noR after", 10),
               ("noR final", 10), ("noR kept", 9), ("T64 seq", 8), ("T64 base", 9), ("wall R/noR", 11),
               ("cpu R/noR", 10), ("cpu R/spec.", 12)]
    print("".join(f"{c:>{w}}" for c, w in columns))
    keys = ["specialist", "replay_after", "replay_final", "replay_kept", "no_replay_after", "no_replay_final",
            "no_replay_kept", "transfer_from_sequence", "transfer_from_base", "time_ratio", "cpu_time_ratio",
            "cpu_vs_specialist"]
    for name, row in summary.items():
        cells = [f"{name:>8}"] + [f"{'-' if row[k] is None else row[k]:>{w}}" for k, (_, w) in zip(keys, columns[1:])]
        print("".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="annotated texts per task")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-size", type=int, default=1000, help="test texts per task")
    parser.add_argument("--epochs", type=int, default=None, help="most epochs per fine-tune (default: early stopping)")
    parser.add_argument("--tasks", nargs="+", default=["genes", "persons", "spam", "demo"],
                        help="the sequence, in order (genes persons spam demo)")
    parser.add_argument("--transfer-size", type=int, default=64, help="annotations for forward transfer (0: skip it)")
    parser.add_argument("--replay-cap", type=int, default=TrainingSettings().replay_cap)
    parser.add_argument("--replay-share", type=float, default=TrainingSettings().replay_share)
    parser.add_argument("--replay-lr-scale", type=float, default=TrainingSettings().replay_lr_scale)
    parser.add_argument("--replay-distill", type=float, default=TrainingSettings().replay_distill,
                        help="weight of the distillation from the parent on replayed windows (0: none)")
    parser.add_argument("--replay-blend", type=float, nargs="*", default=TrainingSettings().replay_blend,
                        help="blends with the parent tried after a replaying re-tune (none: no blending)")
    parser.add_argument("--baseline-seeds", type=int, nargs="*", default=None,
                        help="seeds that also run the sequence without replay (default: every seed)")
    parser.add_argument("--save-specialists", default=None, metavar="DIR",
                        help="save the genes and persons specialists as precision.py's checkpoints")
    parser.add_argument("--specialists-from", type=Path, default=None, metavar="JSON",
                        help="take each seed's specialist F1s from this earlier results file instead of training them")
    parser.add_argument("--train-specialists", nargs="*", default=[], metavar="TASK",
                        help="train these tasks' specialists even with --specialists-from: a cost ratio measured "
                        "in one process, beside the replay step it is compared with")
    parser.add_argument("--keep-models", default=None, metavar="DIR",
                        help="keep the replay sequence's model after each task under DIR/seedN/after-K")
    parser.add_argument("--start-from", default=None, metavar="DIR",
                        help="take the replay sequence's first model from an earlier --keep-models DIR instead of "
                        "training it (it replays nothing, so replay settings do not change it)")
    parser.add_argument("--start-after", type=int, default=0, metavar="K",
                        help="with --start-from, take its models up to the one after task K (0: the first) and "
                        "train only the tasks after it: a look at one step under other settings")
    parser.add_argument("--out", default="continual", help="results file name under benchmarks/results/")
    parser.add_argument("--summarise", nargs="+", type=Path, default=None, metavar="JSON",
                        help="print one table from earlier results files (e.g. one per seed) and run nothing")
    args = parser.parse_args()
    if args.baseline_seeds is None:
        args.baseline_seeds = args.seeds

    if args.summarise:
        files = [json.loads(path.read_text()) for path in args.summarise]
        args.tasks, args.size, args.test_size = files[0]["tasks"], files[0]["size"], files[0]["test_size"]
        merged: dict[int, dict] = {}  # one run per seed; a later file's parts override an earlier's
        for f in files:
            for seed, run in zip(f["seeds"], f["runs"]):
                for task, parts in run.items():
                    merged.setdefault(seed, {}).setdefault(task, {}).update(parts)
        last = files[-1]
        args.seeds, runs = sorted(merged), [merged[seed] for seed in sorted(merged)]
        args.replay_cap, args.replay_share, args.epochs = last["replay_cap"], last["replay_share"], last["epochs"]
        args.out = "continual"
    else:
        runs = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix="falconer-continual-") as tmp:
                # --keep-models: the replay sequence's checkpoints, after each task, for a closer look
                folder = Path(args.keep_models) / f"seed{seed}" if args.keep_models else Path(tmp)
                folder.mkdir(parents=True, exist_ok=True)
                runs.append(run_seed(args.tasks, args, seed, folder))
    summary = summarise(args.tasks, runs)
    print(f"\ncontinual re-tuning: {' -> '.join(args.tasks)}, {args.size} annotations each, "
          f"{args.test_size} test texts, seeds {args.seeds} (means; R = replay, kept = final / specialist, "
          f"T64 = forward transfer at {args.transfer_size})")
    print_table(summary)
    path = save(args.out, {"tasks": args.tasks, "size": args.size, "test_size": args.test_size, "seeds": args.seeds,
                              "epochs": args.epochs, "specialists_from": str(args.specialists_from or ""), "replay_cap": args.replay_cap, "replay_share": args.replay_share,
                              "training": sequence_settings(args).model_dump(
                                  include={"replay_lr_scale", "replay_max_cost", "learning_rate", "replay_blend",
                                           "replay_blend_tolerance", "replay_distill"}),
                              "summary": summary, "runs": runs})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
