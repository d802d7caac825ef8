"""Where the seconds of a small `falconer execute` go: imports, the temporary Prefect server,
the model load, the flow machinery and the forward passes, on 50 demo tweets.

    python benchmarks/small_job.py                 # --flow, --local and the default, 50 tweets
    python benchmarks/small_job.py --texts 200 --paths flow

Each path runs `falconer execute` cold in a subprocess (a fresh interpreter, as a user's shell
would) in a temporary Falconer home with the un-tuned base checkpoint registered (its quality
does not matter here); every printed line is timestamped, so the breakdown is read off the
output: imports and snapshot (until the CLI's first note), flow start (temporary server and
flow run creation, until the flow's first log line), model fetch and load, shards (the
metamodel's own seconds as the shard logs them), and what is left (commits, run records,
shutdown). Import and model-load costs are also measured alone, in fresh interpreters.
Figures are printed and written to benchmarks/results/small_job.json. On a shared machine the
absolute seconds drift; compare paths within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import common  # noqa: F401
import pandas as pd
from common import benchmark_home, save

from falconer_core.data import DEMO_CORPUS_PATH as DEMO

ROOT = Path(__file__).resolve().parents[1]
PLAN = {"steps": [{"name": "place", "op": "label", "instruction": "Does this tweet mention a place?"},
                  {"name": "people", "op": "span", "instruction": "Extract the names of people."}],
        "filter": "place", "outputs": ["place", "people"]}


def register_base(home: Path) -> str:
    """The base encoder saved as a checkpoint and registered as `small` in `home`; returns NAME/N."""
    from falconer_core.metamodel import Metamodel
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from falconer_core.settings import Settings

    folder = Metamodel.from_base().save(home / "small-ckpt")
    ref = Registry.from_settings(Settings()).log_fine_tune(
        folder, model_name="small", parent=None, base_model=None, plan=Plan.from_dict(PLAN),
        annotation_set_hash="none", n_annotations=0, annotator="human", corpus_id="demo",
        settings={"epochs": 0}, metrics={"mean_f1": 0.0},
    )
    return str(ref)


def timed_lines(command: list[str], env: dict) -> tuple[float, list[tuple[float, str]], int]:
    """Run `command`, timestamping each output line from process start; (wall, lines, exit code)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines = [(time.perf_counter() - started, line.rstrip()) for line in process.stdout]
    code = process.wait()
    return time.perf_counter() - started, lines, code


def first(lines: list[tuple[float, str]], *needles: str) -> float | None:
    for at, line in lines:
        if any(n in line for n in needles):
            return at
    return None


def alone(code: str, env: dict) -> float:
    """Seconds a fresh interpreter takes to run `code` (interpreter start included), or what
    `code` prints as its last line when it prints a number (a time it measured itself)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT, capture_output=True, text=True)
    printed = done.stdout.strip().splitlines()
    return round(float(printed[-1]) if printed else time.perf_counter() - started, 2)


def cli_breakdown(model: str, corpus: Path, env: dict, path: str) -> dict:
    command = [sys.executable, "-m", "falconer_cli.main", "execute", model, "--corpus", str(corpus), "--records", "0",
               "--run-id", f"small-{path}-{time.time_ns()}", "--no-reuse"]  # each path does the work
    if path != "auto":
        command.append(f"--{path}")
    wall, lines, code = timed_lines(command, env)
    if code:
        print("\n".join(line for _, line in lines[-30:]))
        raise SystemExit(f"falconer execute ({path}) failed with exit code {code}")
    noted = first(lines, "executing ")
    in_process = any("without a Prefect server" in line for _, line in lines) or path == "local"
    flow_start = noted if in_process else first(lines, "Beginning flow run", "Created flow run")
    fetched = None if in_process else first(lines, "fetch-model", "Finished in state Completed()")
    shard_seconds = sum(float(m.group(1)) for _, line in lines if (m := re.search(r"rows in ([0-9.]+) s", line)))
    shard_logged = first(lines, "rows in ")
    out = {
        "wall_s": round(wall, 2),
        "until_first_note_s": round(noted or 0, 2),
        "flow_start_s": round((flow_start or 0) - (noted or 0), 2),
        "until_shard_done_s": round(shard_logged or 0, 2),
        "metamodel_s": round(shard_seconds, 2),
        "after_shards_s": round(wall - (shard_logged or wall), 2),
    }
    if fetched is not None:
        out["first_task_done_s"] = round(fetched, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=50)
    parser.add_argument("--paths", nargs="+", default=["flow", "local", "auto"], choices=["flow", "local", "auto"],
                        help="--flow, --local, or neither (the CLI decides by size)")
    parser.add_argument("--home", default=None, help="Falconer home to use (default: a temporary one)")
    args = parser.parse_args()

    home = benchmark_home(args.home, "falconer-small-")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    model = register_base(home)
    corpus = home / f"tweets_{args.texts}.csv"
    pd.read_csv(DEMO).head(args.texts)[["text"]].to_csv(corpus, index=False)

    result: dict = {"model": model, "texts": args.texts, "cpu_count": os.cpu_count()}
    result["alone"] = {
        "python_s": alone("pass", env),
        "import_cli_s": alone("import falconer_cli.main", env),
        "import_prefect_s": alone("import prefect", env),
        "import_torch_transformers_s": alone("import torch, transformers", env),
        "import_flows_s": alone("import flows", env),
        "model_load_s": alone(
            "import time, torch; from falconer_core.metamodel import Metamodel; t=time.perf_counter(); "
            f"Metamodel.load({str(home / 'small-ckpt')!r}); print(time.perf_counter()-t)", env),
    }
    print("alone, fresh interpreter each (seconds):")
    for key, value in result["alone"].items():
        print(f"  {key:<28} {value:6.2f}")
    for path in args.paths:
        found = cli_breakdown(model, corpus, env, path)
        result[path] = found
        print(f"falconer execute ({path} path), {args.texts} tweets:")
        for key, value in found.items():
            print(f"  {key:<28} {value:6.2f}")
    print(f"results: {save('small_job', result)}")


if __name__ == "__main__":
    main()
