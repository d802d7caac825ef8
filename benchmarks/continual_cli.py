"""Continual re-tuning through the `falconer` command line, as a user runs it (issue 19's CLI
acceptance): `mine` BC2GM genes (task A) with human labels, then `mine` BTC persons (task B) with
`--parent` A's version; `evaluate` both versions on the same 1,000 BC2GM test sentences (and B
on 1,000 BTC test tweets) and read from the registry whether B became champion of both tasks.

Every step is the real CLI in a subprocess (`python -m falconer_cli.main`, this checkout first on
PYTHONPATH) in a temporary FALCONER_HOME; the corpora, plans and test files are written there.
Each corpus holds `--corpus-size` training sentences (default 5 x `--size`) and `mine` annotates
`--size` of them (`--sample-fraction size/corpus-size`, floor 100); the rest is the unlabeled
text self-training uses (on by default in `mine`, as users get it; `--no-unlabeled` to skip).

    python benchmarks/continual_cli.py                     # 512 annotations of 2,560 sentences a task
    python benchmarks/continual_cli.py --size 32 --test-size 50 --epochs 1   # a smoke run
    python benchmarks/continual_cli.py --no-replay-too     # also B without replay: today's forgetting
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import common  # noqa: F401
from common import benchmark_home, save, subset

from falconer_core.readers import load_split
from falconer_core.sampling.draw import sample_size

ROOT = Path(__file__).resolve().parents[1]
TEST_SEED = 12345  # the test subsets continual.py scores on
MODEL = "falconer-metamodel"
TASKS = {  # task -> (data set, plan step name); the step's instruction is the reader's own
    "genes": ("bc2gm", "genes"),
    "persons": ("btc-per", "people"),
}
SCORE = re.compile(r"proxy F1 against [^:]+: ([0-9.]+)(?: \[([0-9.]+), ([0-9.]+)\])?")
VERSION = re.compile(r"^MLflow\s+model (\S+)\s+run \S+\s+— (.*?)\s*$", re.M)  # print_where's line


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_corpus(path: Path, examples: list, step: str, prefix: str) -> None:
    """JSONL with id, text and the step's gold spans as [{"start", "end"}] (gold.coerce_spans)."""
    with path.open("w") as out:
        for k, e in enumerate(examples):
            spans = [{"start": s.start, "end": s.end} for s in e.spans]
            out.write(json.dumps({"id": f"{prefix}-{k:05d}", "text": e.text, step: spans}) + "\n")


def write_plan(path: Path, step: str, instruction: str) -> None:
    path.write_text(
        f"instruction: {instruction}\nsteps:\n- name: {step}\n  op: span\n  instruction: {instruction}\noutputs: [{step}]\n"
    )


def falconer(*args: str, folder: Path, name: str) -> str:
    """Run one CLI command; its output goes to folder/name.log as it runs (follow it with tail -f)
    and is returned."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep),
           "COLUMNS": "250", "NO_COLOR": "1"}
    log(f"falconer {' '.join(args)}")
    start = time.perf_counter()
    path = folder / f"{name}.log"
    log(f"  output: {path}")
    with path.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "falconer_cli.main", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    text = path.read_text()
    log(f"  exit {done.returncode} after {seconds:.0f} s")
    if done.returncode != 0:
        print(text[-4000:], file=sys.stderr)
        raise SystemExit(f"`falconer {args[0]}` failed (exit {done.returncode})")
    return text


def mined_version(output: str) -> tuple[str, str]:
    """The version `mine` registered and its verdict, from its "where to look" box."""
    found = VERSION.findall(output)
    if not found:
        raise SystemExit("no registered version in mine's output")
    return found[-1]


def f1_of(output: str) -> dict[str, float | None]:
    found = SCORE.findall(output)
    if not found:
        raise SystemExit("no F1 in evaluate's output")
    f1, lo, hi = found[-1]
    return {"f1": float(f1), "lo": float(lo) if lo else None, "hi": float(hi) if hi else None}


def champion_aliases() -> dict[str, str]:
    """The registered model's aliases (alias -> version), read from the temporary home's registry."""
    from falconer_core.registry import Registry
    from falconer_core.settings import Settings

    registry = Registry.from_settings(Settings())
    return dict(registry.client.get_registered_model(MODEL).aliases or {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="Texts annotated per task.")
    parser.add_argument("--corpus-size", type=int, default=None, help="Training sentences per corpus (default 5 x size).")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="Which training sentences make up the corpora.")
    parser.add_argument("--epochs", type=int, default=None, help="Passed to mine (default: its early stopping).")
    parser.add_argument("--no-unlabeled", action="store_true", help="Pass --no-unlabeled to mine (no self-training).")
    parser.add_argument("--no-replay-too", action="store_true", help="Also mine B with --no-replay and score it.")
    parser.add_argument("--home", default=None, help="FALCONER_HOME (default: a new temporary folder).")
    parser.add_argument("--out", default="continual_cli", help="Result name under benchmarks/results/.")
    args = parser.parse_args()

    from throughput import cpu_features

    home = benchmark_home(args.home, "falconer-continual-cli-")
    folder = home / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    n = args.corpus_size or 5 * args.size
    fraction = args.size / n
    annotated = sample_size(n, fraction)
    log(f"FALCONER_HOME {home}; corpora of {n:,} sentences, --sample-fraction {fraction:.4g} "
        f"({annotated} annotated a task); self-training {'off' if args.no_unlabeled else 'on'}")

    plans, corpora, tests = {}, {}, {}
    for task, (data, step) in TASKS.items():
        train = subset(load_split(data, "train"), n, seed=1000 + args.seed)
        test = subset(load_split(data, "test"), args.test_size, seed=TEST_SEED)
        instruction = train[0].instruction
        plans[task], corpora[task], tests[task] = folder / f"{task}.yaml", folder / f"{task}.jsonl", folder / f"{task}-test.jsonl"
        write_plan(plans[task], step, instruction)
        write_corpus(corpora[task], train, step, f"{task}-train")
        write_corpus(tests[task], test, step, f"{task}-test")
        log(f"task {task}: {len(train):,} train and {len(test):,} test texts from {data}, step {step!r}: {instruction!r}")

    mine_options = ["--annotator", "gold", "--id-column", "id", "--sample-fraction", f"{fraction:.6g}", "--records", "0"]
    mine_options += ["--no-unlabeled"] if args.no_unlabeled else []
    mine_options += ["--epochs", str(args.epochs)] if args.epochs else []
    timings: dict[str, float] = {}
    mined: dict[str, dict] = {}

    def mine(task: str, name: str, *extra: str) -> str:
        start = time.perf_counter()
        out = falconer("mine", "--plan", str(plans[task]), "--corpus", str(corpora[task]), *mine_options, *extra,
                       folder=home, name=name)
        timings[name] = round(time.perf_counter() - start, 1)
        version, verdict = mined_version(out)
        mined[name] = {"version": version, "verdict": verdict, "held_out": f1_of(out)}
        log(f"  {name}: {version}, held-out F1 {mined[name]['held_out']['f1']:.3f}; {verdict}")
        return version

    def evaluate(version: str, task: str, name: str) -> dict:
        out = falconer("evaluate", version, "--corpus", str(tests[task]), "--id-column", "id", "--plan", str(plans[task]),
                       "--annotator", "gold", "--sample-fraction", "1", folder=home, name=name)
        score = f1_of(out)
        log(f"  {version} on {task}: F1 {score['f1']:.3f} [{score['lo']}, {score['hi']}]")
        return score

    version_a = mine("genes", "mine-A")
    log(f"A = {version_a}")
    def execute_by_plan(task: str) -> str | None:
        """`falconer execute NAME --plan P` on a few test texts: the version that ran task P."""
        few = folder / f"{task}-few.jsonl"
        few.write_text("".join(tests[task].read_text().splitlines(keepends=True)[:20]))
        try:
            out = falconer("execute", MODEL, "--plan", str(plans[task]), "--corpus", str(few), "--id-column", "id",
                           "--records", "0", folder=home, name=f"execute-{task}")
        except SystemExit as err:  # e.g. the task has no champion: say so, keep the figures
            log(f"  {err}")
            return None
        found = re.findall(r"^MLflow\s+model (\S+)", out, re.M)
        log(f"  `execute {MODEL} --plan {task}` ran {found[-1] if found else '?'}")
        return found[-1] if found else None

    scores: dict[str, dict] = {"A_genes": evaluate(version_a, "genes", "evaluate-A-genes")}
    version_b = mine("persons", "mine-B", "--parent", version_a)
    log(f"B = {version_b} (parent {version_a}, replay on)")
    scores["B_genes"] = evaluate(version_b, "genes", "evaluate-B-genes")
    scores["B_persons"] = evaluate(version_b, "persons", "evaluate-B-persons")
    lineage = falconer("lineage", version_b, folder=home, name="lineage-B")
    aliases = champion_aliases()
    hashes = {task: _plan_hash(plans[task]) for task in TASKS}
    b_number = version_b.rsplit("/", 1)[1]
    champion_of = {task: str(aliases.get(f"champion-{h}")) == b_number for task, h in hashes.items()}
    served = {task: execute_by_plan(task) for task in TASKS}

    result: dict = {
        "settings": {**vars(args), "corpus_size": n, "sample_fraction": fraction, "annotated": annotated,
                     "self_training": not args.no_unlabeled, "home": str(home)},
        "cpu": cpu_features(),
        "versions": {"A": version_a, "B": version_b},
        "scores": scores,
        "kept": round(scores["B_genes"]["f1"] / scores["A_genes"]["f1"], 4) if scores["A_genes"]["f1"] else None,
        "plan_hashes": hashes,
        "aliases": aliases,
        "B_champion_of": champion_of,
        "execute_by_plan_ran": served,
        "lineage_B": lineage,
    }
    result["seconds"], result["mined"] = timings, mined
    save(args.out, result)  # the acceptance figures, before the optional run without replay
    if args.no_replay_too:
        version_c = mine("persons", "mine-B-no-replay", "--parent", version_a, "--no-replay")
        result["versions"]["B_no_replay"] = version_c
        scores["B_no_replay_genes"] = evaluate(version_c, "genes", "evaluate-Bnr-genes")
        scores["B_no_replay_persons"] = evaluate(version_c, "persons", "evaluate-Bnr-persons")
        result["kept_no_replay"] = round(scores["B_no_replay_genes"]["f1"] / scores["A_genes"]["f1"], 4)
        result["aliases_after_no_replay"] = champion_aliases()

    print("\n" + lineage)
    print(f"CPU: {result['cpu']['cpu']} ({result['cpu']['summary']}); {annotated} annotations a task of {n:,} "
          f"sentences; self-training {'off (--no-unlabeled)' if args.no_unlabeled else 'on (default)'}; "
          f"test {args.test_size} texts a task (seed {TEST_SEED})")
    print(f"{'version':<40}{'genes F1 [95%]':<24}{'persons F1 [95%]':<24}mine s")
    rows = [("A " + version_a, "A_genes", None, "mine-A"), ("B " + version_b + " (replay)", "B_genes", "B_persons", "mine-B")]
    if args.no_replay_too:
        rows.append(("B' " + result["versions"]["B_no_replay"] + " (no replay)", "B_no_replay_genes",
                     "B_no_replay_persons", "mine-B-no-replay"))
    for label, genes, persons, mined in rows:
        print(f"{label:<40}{_cell(scores.get(genes)):<24}{_cell(scores.get(persons)):<24}{timings[mined]:.0f}")
    print(f"kept (B genes / A genes): {result['kept']}  (acceptance >= 0.97)"
          + (f"; without replay {result['kept_no_replay']}" if args.no_replay_too else ""))
    print("B champion of: " + ", ".join(f"{task} {'yes' if ok else 'no'}" for task, ok in champion_of.items())
          + f"; aliases {aliases}")
    print("`falconer execute " + MODEL + " --plan P` ran: " + ", ".join(f"{task} {v}" for task, v in served.items()))
    print(f"saved {save(args.out, result)}")


def _plan_hash(path: Path) -> str:
    from falconer_core.plan import Plan

    return Plan.load(path).hash


def _cell(score: dict | None) -> str:
    if score is None:
        return "—"
    interval = f" [{score['lo']:.2f}, {score['hi']:.2f}]" if score["lo"] is not None else ""
    return f"{score['f1']:.3f}{interval}"


if __name__ == "__main__":
    main()
