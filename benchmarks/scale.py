"""Execution at corpus scale, side by side in one run: memory and start-up at 20k vs 1M texts,
texts/s per runner beside the raw encoder forward on the same texts, incremental re-runs, and
the proxy against the embedded LLM executing the same plan.

    python benchmarks/scale.py                      # every section
    python benchmarks/scale.py --sections runners incremental --texts 4000

Corpora are synthetic: the demo's 1,200 tweets repeated with a numbered suffix, so every text is
distinct. A metamodel is fine-tuned once on 400 demo tweets (human labels) and registered in a
temporary Falconer home. Figures are printed and written to benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import common  # noqa: F401
import pandas as pd
from common import benchmark_home, save

from falconer_core.data import DEMO_CORPUS_PATH as DEMO
from falconer_core.data import demo_plan

SPAN_PLAN = {"steps": [{"name": "people", "op": "span", "instruction": "Extract the names of people."}],
             "outputs": ["people"]}


#: Makes this invocation's texts its own, so no shard is reused from an earlier benchmark run.
SALT = format(int(time.time()), "x")


def synthetic_corpus(path: Path, n: int) -> Path:
    """`n` distinct tweets built from the demo corpus (text plus ' #k-salt'), written as CSV in chunks."""
    demo = pd.read_csv(DEMO)["text"].tolist()
    with path.open("w", encoding="utf-8") as handle:
        handle.write("text\n")
        for start in range(0, n, 100_000):
            rows = [f"{demo[i % len(demo)]} #{i}-{SALT}" for i in range(start, min(n, start + 100_000))]
            pd.DataFrame({"text": rows}).to_csv(handle, header=False, index=False)
    return path


def register_model(home: Path) -> str:
    """A MiniLM metamodel fine-tuned for one epoch on 200 demo tweets, registered in `home`
    (reused when the home already has one); returns NAME/N. Its quality does not matter here."""
    from falconer_core.metamodel import Metamodel
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry, RegistryError
    from falconer_core.settings import Settings
    from falconer_core.types import LabelExample, SpanExample

    try:
        return str(Registry.from_settings(Settings()).resolve("bench"))
    except RegistryError:
        pass
    demo = pd.read_csv(DEMO).head(200)
    examples = []
    for row in demo.itertuples():
        examples.append(LabelExample(row.text, "Does this tweet mention a place?", str(row.mentions_place).lower() == "true"))
        spans = json.loads(row.people) if isinstance(row.people, str) else []
        examples.append(SpanExample(row.text, "Extract the names of people.", tuple(_spans(row.text, spans))))
    model = Metamodel.from_base()
    model.fine_tune(examples, epochs=1, min_steps=0, progress=False)
    folder = model.save(home / "bench-ckpt")
    ref = Registry.from_settings(Settings()).log_fine_tune(
        folder, model_name="bench", parent=None, base_model=None, plan=Plan.from_dict(SPAN_PLAN),
        annotation_set_hash="demo-400", n_annotations=400, annotator="human", corpus_id="demo",
        settings={"epochs": 1}, metrics={"mean_f1": 0.0},
    )
    return str(ref)


def _spans(text: str, items: list) -> list:
    from falconer_core.annotators import coerce_spans

    return coerce_spans(text, items)


# -- memory and start-up ------------------------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def cli_run(model: str, corpus: Path, env: dict, *, shards: int, run_id: str) -> dict:
    """`falconer execute` in a subprocess until `shards` shards are committed; peak tree RSS and
    seconds to the first committed shard (from process start)."""
    command = [sys.executable, "-m", "falconer_cli.main", "execute", model, "--corpus", str(corpus),
               "--run-id", run_id, "--shard-size", "1000"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    first, seen = None, 0
    for line in process.stdout:
        if "Finished in state Completed()" in line and "commit-shard" in line:
            seen += 1
            first = first or time.perf_counter() - started
            if seen >= shards:
                break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stop.set()
    sampler.join()
    return {"peak_tree_rss_mb": round(peak[0] / 2**20), "seconds_to_first_commit": round(first or -1, 1)}


def memory_section(model: str, home: Path, work: Path, env: dict, sizes: tuple[int, int] = (20_000, 1_000_000)) -> dict:
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.settings import Settings

    out = {}
    for n in sizes:
        corpus = synthetic_corpus(work / f"tweets_{n}.csv", n)
        started = time.perf_counter()
        snapshot_corpus(CorpusSource(path=str(corpus.resolve()), name=corpus.stem), Settings().corpora_dir)
        snap_s = time.perf_counter() - started
        cold = cli_run(model, corpus, env, shards=3, run_id=f"rss-{n}-{SALT}")
        out[n] = {"snapshot_seconds": round(snap_s, 1), **cold, "csv_mb": round(corpus.stat().st_size / 2**20)}
        print(f"  {n:>9,} texts: snapshot {snap_s:5.1f} s (once per file version); CLI run: peak tree RSS "
              f"{cold['peak_tree_rss_mb']} MB, first shard committed {cold['seconds_to_first_commit']} s after start")
    small, big = sizes
    out["rss_growth_mb"] = out[big]["peak_tree_rss_mb"] - out[small]["peak_tree_rss_mb"]
    print(f"  the {big:,}-text run adds {out['rss_growth_mb']} MB of peak RSS over the {small:,}-text run")
    return out


# -- runners ------------------------------------------------------------------------------------------


def runners_section(model: str, work: Path, n: int) -> dict:
    from throughput import raw_forward

    from falconer_core.corpus import CorpusSource
    from falconer_core.execution import ExecutionSettings
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from flows import execute

    corpus = synthetic_corpus(work / f"runners_{n}.csv", n)
    source = CorpusSource(path=str(corpus), name="runners")
    plan = Plan.from_dict(SPAN_PLAN)
    out = {}
    for name, settings in [
        ("sequential", {"runner": "sequential"}),
        ("processes", {"runner": "processes", "workers": 2}),
        ("dask", {"runner": "dask", "workers": 2}),
    ]:
        execution = ExecutionSettings(shard_size=max(n // 8, 1), reuse=False, run_id=f"runner-{name}-{SALT}", **settings)
        started = time.perf_counter()
        result = execute(model, source, plan=plan, execution=execution)
        wall = time.perf_counter() - started
        out[name] = {"texts_per_s_wall": round(n / wall, 1), "metamodel_texts_per_s": round(result.texts_run / result.seconds * result.processes, 1),
                     "processes": result.processes, "model_loads_per_process": result.model_loads_per_process}
        print(f"  {name:10s}: {out[name]['texts_per_s_wall']:7.1f} texts/s over the whole flow, "
              f"{out[name]['metamodel_texts_per_s']:7.1f} texts/s of metamodel time x processes; "
              f"{result.processes} process(es), model loaded {result.model_loads_per_process}x each")
    from falconer_core.metamodel import open_metamodel

    local = open_metamodel(Registry.from_settings().fetch(model))
    texts = pd.read_csv(corpus)["text"].tolist()[: min(n, 2000)]
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    local.get_span(texts, SPAN_PLAN["steps"][0]["instruction"], progress=False)
    full = len(texts) / (time.perf_counter() - started)
    raw_s, _ = raw_forward(local, texts, SPAN_PLAN["steps"][0]["instruction"], 64)
    out["in_process_full_texts_per_s"] = round(full, 1)
    out["raw_forward_texts_per_s"] = round(len(texts) / raw_s, 1)
    for name in ("sequential", "processes", "dask"):
        out[name]["vs_raw"] = round(out[name]["metamodel_texts_per_s"] / out["raw_forward_texts_per_s"], 2)
    print(f"  in-process get_span {full:.1f} texts/s, raw encoder forward {len(texts) / raw_s:.1f} texts/s "
          f"(all cores); metamodel/raw: " + ", ".join(f"{k} {out[k]['vs_raw']}" for k in ("sequential", "processes", "dask")))
    return out


# -- incremental --------------------------------------------------------------------------------------


def incremental_section(model: str, work: Path, n: int) -> dict:
    from falconer_core.corpus import CorpusSource
    from falconer_core.execution import ExecutionSettings
    from falconer_core.plan import Plan
    from flows import execute

    path = work / "growing.csv"
    plan, settings = Plan.from_dict(SPAN_PLAN), ExecutionSettings()
    synthetic_corpus(path, n)
    started = time.perf_counter()
    first = execute(model, CorpusSource(path=str(path)), plan=plan, execution=settings)
    full = time.perf_counter() - started
    synthetic_corpus(path, n + n // 20)
    started = time.perf_counter()
    second = execute(model, CorpusSource(path=str(path)), plan=plan, execution=settings)
    again = time.perf_counter() - started
    out = {"texts": n, "appended": n // 20, "full_seconds": round(full, 1), "appended_seconds": round(again, 1), "ratio": round(again / full, 3),
           "shards_reused": second.shards_reused, "shards_run": second.shards_run, "texts_run": second.texts_run,
           "first_shards": first.shards_run}
    print(f"  {n:,} texts: {full:.1f} s; {n:,} + {n // 20:,} appended: {again:.1f} s ({second.shards_reused} shards reused, "
          f"{second.shards_run} run, {second.texts_run} texts) -> ratio {out['ratio']}")
    return out


# -- proxy vs LLM executor ----------------------------------------------------------------------------


def llm_section(model: str, n: int) -> dict:
    from falconer_core.annotators import LLMAnnotator
    from falconer_core.execution import execute_plan
    from falconer_core.llm import LLMSettings, LocalLLM
    from falconer_core.metamodel import open_metamodel
    from falconer_core.registry import Registry

    texts = pd.read_csv(DEMO)["text"].tolist()[600 : 600 + n]
    plan = demo_plan()
    proxy = open_metamodel(Registry.from_settings().fetch(model))
    started = time.perf_counter()
    execute_plan(plan, texts, proxy)
    proxy_s = time.perf_counter() - started
    llm = LLMAnnotator(LocalLLM(LLMSettings(backend="local", cache_dir=None)), batch_size=1)  # one text a call: small JSON
    started = time.perf_counter()
    execute_plan(plan, texts, llm)
    llm_s = time.perf_counter() - started
    out = {"texts": n, "proxy_texts_per_s": round(n / proxy_s, 2), "llm_texts_per_s": round(n / llm_s, 3),
           "ratio": round(llm_s / proxy_s, 1)}
    print(f"  demo plan on {n} tweets: metamodel {out['proxy_texts_per_s']} texts/s, SmolLM2-135M "
          f"{out['llm_texts_per_s']} texts/s -> the proxy is {out['ratio']}x faster")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["memory", "runners", "incremental", "llm"],
                        choices=["memory", "runners", "incremental", "llm"])
    parser.add_argument("--texts", type=int, default=4000, help="texts per runner in the runners section")
    parser.add_argument("--incremental-texts", type=int, default=20_000, help="corpus size before 5%% is appended")
    parser.add_argument("--memory-texts", type=int, nargs=2, default=[20_000, 1_000_000], metavar=("SMALL", "BIG"),
                        help="corpus sizes the memory section compares")
    parser.add_argument("--llm-texts", type=int, default=24, help="texts the embedded LLM executes")
    parser.add_argument("--home", default=None, help="Falconer home to use (default: a temporary one)")
    args = parser.parse_args()

    home = benchmark_home(args.home, "falconer-scale-")
    work = home / "corpora-src"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = register_model(home)
    print(f"model {model} fine-tuned and registered in {time.perf_counter() - started:.0f} s (home {home})")
    env = {**os.environ}
    result: dict = {"model": model, "cpu_count": os.cpu_count()}
    sections = {"memory": lambda: memory_section(model, home, work, env, tuple(args.memory_texts)),
                "runners": lambda: runners_section(model, work, args.texts),
                "incremental": lambda: incremental_section(model, work, args.incremental_texts),
                "llm": lambda: llm_section(model, args.llm_texts)}
    for name in args.sections:
        print(f"[{name}]")
        result[name] = sections[name]()
    print(f"results: {save('scale', result)}")


if __name__ == "__main__":
    main()
