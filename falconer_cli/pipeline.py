"""The pipeline commands: `plan`, `mine`, `execute`, `evaluate` and `demo`.

Each reads and checks its inputs (corpus, plan file) before any flow starts, so a wrong path
or column fails in a second with one clear line instead of after a Prefect server has started.
The flows then run in this process (on the temporary Prefect server unless `PREFECT_API_URL`
names another), and the command prints what they produced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from falconer_cli.app import app, guarded
from falconer_cli.render import console, print_note, print_plan, print_warning

LLMName = Literal["openai", "local"]
AnnotatorName = Literal["gold", "openai", "local"]

# Options shared by several commands, declared once so their help reads the same everywhere.
CorpusOpt = Annotated[Path, typer.Option("--corpus", help="CSV, TSV, JSONL or Parquet file, or a folder of .txt files.")]
TextColumnOpt = Annotated[str, typer.Option("--text-column", help="Column holding the texts.")]
IdColumnOpt = Annotated[Optional[str], typer.Option("--id-column", help="Column of unique ids (default: row numbers; file stems for a folder).")]
LLMOpt = Annotated[Optional[LLMName], typer.Option("--llm", help="LLM that plans: 'openai' (any OpenAI-compatible endpoint: OPENAI_BASE_URL, OPENAI_API_KEY) or 'local' (embedded SmolLM2, offline, weak). Default: openai when OPENAI_BASE_URL/OPENAI_API_KEY is set, else local.")]
LLMModelOpt = Annotated[Optional[str], typer.Option("--llm-model", help="Model name for the endpoint (default: FALCONER_LLM_MODEL or gpt-4.1-mini).")]
AnnotatorOpt = Annotated[Optional[AnnotatorName], typer.Option("--annotator", help="Who labels the sample: 'gold' (human labels: one corpus column per plan step), 'openai' or 'local'. Default: as --llm.")]
SampleFractionOpt = Annotated[Optional[float], typer.Option("--sample-fraction", help="Share of the corpus to annotate (default 0.05, with a floor of 100 texts and a cap of 2000).")]
RunnerOpt = Annotated[Optional[Literal["sequential", "processes", "dask"]], typer.Option("--runner", help="Where shards run: sequential (this process), processes (a local pool) or dask (a LocalCluster, or --dask-address).")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", min=1, help="Processes or Dask workers (default: the machine's cores).")]
DaskAddressOpt = Annotated[Optional[str], typer.Option("--dask-address", help="An existing Dask scheduler, e.g. tcp://host:8786 (implies --runner dask).")]
PrecisionOpt = Annotated[Optional[Literal["auto", "fp32", "int8", "bf16"]], typer.Option("--precision", help="Inference precision: auto (default: bf16 on CUDA and on CPUs with bf16 units, AMX or AVX512-BF16, else fp32; only a precision the version's quality gate passed, see `falconer precision`), fp32, int8 (CPU: linear layers quantized) or bf16 (CUDA, or a CPU with bf16 units: autocast).")]
RunFolderOpt = Annotated[Optional[str], typer.Option("--run-folder", help="Where workers leave shard parts: a folder or fsspec URL all workers reach (default: FALCONER_HOME/runs).")]
CascadeOpt = Annotated[Optional[str], typer.Option("--cascade", help="Defer to an LLM where the proxy is unsure, to a target relative to the LLM: accuracy=0.95, precision=0.9 or recall=0.9 for the label steps, optionally with span_f1=0.8 (comma-separated). Needs an LLM (OPENAI_BASE_URL/OPENAI_API_KEY, or --cascade-llm local).")]
CascadeDeltaOpt = Annotated[float, typer.Option("--cascade-delta", min=0.0001, max=0.5, help="Allowed probability that the cascade misses its target.")]
LLMBudgetOpt = Annotated[Optional[int], typer.Option("--llm-budget", min=0, help="Most texts the cascade's LLM may see, calibration included (default: no limit).")]
CascadeLLMOpt = Annotated[Optional[LLMName], typer.Option("--cascade-llm", help="The cascade's LLM: openai (default) or local.")]
AuditOpt = Annotated[int, typer.Option("--audit", min=0, help="After a cascade run, label this many fresh random texts with the LLM and report the agreement achieved.")]
UnlabeledOpt = Annotated[bool, typer.Option("--unlabeled/--no-unlabeled", help="Also learn from the corpus's unannotated texts (self-training on a capped random draw of them); --no-unlabeled: the annotations only.")]
PlanFileOpt = Annotated[Optional[Path], typer.Option("--plan", help="Plan file (YAML or JSON) to run instead of planning the instruction.")]


def _endpoint_configured() -> bool:
    return bool(os.environ.get("OPENAI_BASE_URL", "").strip() or os.environ.get("OPENAI_API_KEY", "").strip())


def _default_llm(llm: str | None) -> str:
    return llm or ("openai" if _endpoint_configured() else "local")


def _check_corpus(path: Path, text_column: str, id_column: str | None):
    """Snapshot the corpus up front (streamed, once per file version): every corpus error
    surfaces here, before Prefect starts, and the flows then find the snapshot and read nothing."""
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.settings import Settings

    source = CorpusSource(path=str(path.resolve()), text_column=text_column, id_column=id_column, name=path.stem)
    return snapshot_corpus(source, Settings().corpora_dir), source


def _corpus_version(corpus_id: str, n_texts: int) -> str:
    return f"corpus version {corpus_id[:16]} ({n_texts:,} texts)"


def print_corpus_ran(checked: Any, corpus_id: str, n_texts: int) -> None:
    """Name the corpus version the flow actually ran: the file may have been rewritten between
    the check (whose count was announced) and the flow's own snapshot of it."""
    ran = _corpus_version(corpus_id, n_texts)
    if corpus_id == checked.corpus_id:
        print_note(f"ran {ran}")
    else:
        print_warning(f"the corpus file changed after it was checked: the run read {ran}, not the "
                      f"{_corpus_version(checked.corpus_id, checked.n_texts)} announced above")


def execution_settings(**options: Any):
    """Execution settings from CLI options (unset ones keep their defaults), with a progress bar;
    a Dask address implies the dask runner."""
    from falconer_core.execution import ExecutionSettings

    if options.get("dask_address") and not options.get("runner"):
        options["runner"] = "dask"
    return ExecutionSettings(progress=True, **{k: v for k, v in options.items() if v is not None})


def cascade_settings(target: str | None, *, delta: float, budget: int | None, llm: str | None, llm_model: str | None,
                     audit: int):
    """Cascade settings from CLI options (None without --cascade); checks an LLM is configured."""
    if target is None:
        if budget is not None or audit:
            from falconer_core.errors import ConfigError

            raise ConfigError("--llm-budget and --audit belong to a cascade: add --cascade, e.g. --cascade accuracy=0.95")
        return None
    from falconer_core.annotators.choice import AnnotatorChoice
    from falconer_core.cascade import CascadeSettings

    settings = CascadeSettings(
        target=target, delta=delta, llm_budget=budget, audit_size=audit,
        llm=AnnotatorChoice(name=llm or "openai", model=llm_model),
    )
    settings.check_llm()
    return settings


def _check_plan(path: Path | None):
    from falconer_core.plan import Plan

    return None if path is None else Plan.load(path)


def _run_flow(flow, **parameters: Any):
    """Run a flow here and return (its result, its flow run id); a failed run raises the
    exception that failed it, so a FalconerError inside a task still ends in one clean line."""
    from falconer_cli.logs import quiet_user_error_tracebacks

    quiet_user_error_tracebacks()
    state = flow(**parameters, return_state=True)
    flow_run_id = str(state.state_details.flow_run_id)
    return state.result(), flow_run_id


# ---------------------------------------------------------------------------------------------
# mine and demo
# ---------------------------------------------------------------------------------------------


@app.command("demo")
@guarded
def demo(
    llm: Annotated[Optional[LLMName], typer.Option("--llm", help="Plan and annotate with an LLM instead of the shipped plan and human labels: 'openai' (OPENAI_BASE_URL/OPENAI_API_KEY; the default when they are set) or 'local' (embedded SmolLM2: offline, slow, weak).")] = None,
    llm_model: LLMModelOpt = None,
    sample_fraction: Annotated[float, typer.Option("--sample-fraction", help="Share of the 1,200 tweets to annotate.")] = 0.2,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Most fine-tuning epochs (default: up to 20, early stopping on a dev split).")] = None,
    # off by default here: the demo must stay a few minutes on 2 cores, and self-training's time on it is unmeasured
    unlabeled: Annotated[bool, typer.Option("--unlabeled/--no-unlabeled", help="Also learn from the corpus's unannotated texts (self-training; off in the demo to keep it short, on by default in mine).")] = False,
    records: Annotated[int, typer.Option("--records", min=0, help="Mined records to print at the end.")] = 5,
) -> None:
    """Mine the shipped demo corpus end to end and show what came out.

    1,200 tweets from the Broad Twitter Corpus (CC BY 4.0), instruction "Find tweets that
    mention a place and extract the people they mention"; by default with the shipped plan and
    the corpus's human labels.
    """
    from falconer_core.data import DEMO_CORPUS_PATH, DEMO_INSTRUCTION, DEMO_PLAN_PATH

    llm = llm or ("openai" if _endpoint_configured() else None)
    if llm is None:
        print_note("demo: the shipped plan, human labels from the corpus (set OPENAI_BASE_URL/OPENAI_API_KEY "
                   "or pass --llm local to plan and annotate with an LLM)")
    else:
        print_note(f"demo: planning and annotating with the {llm} LLM")
    run_mine(
        instruction=DEMO_INSTRUCTION, corpus=DEMO_CORPUS_PATH, text_column="text", id_column="id",
        plan_file=DEMO_PLAN_PATH if llm is None else None, annotator=llm or "gold", llm=llm or "local",
        llm_model=llm_model, sample_fraction=sample_fraction, base_model=None, parent=None, model_name=None,
        epochs=epochs, unlabeled=unlabeled, shard_size=None, records=records, runner=None, workers=None,
        dask_address=None, run_folder=None,
    )


@app.command("mine")
@guarded
def mine(
    instruction: Annotated[Optional[str], typer.Argument(help="What to mine, in plain words (optional with --plan).")] = None,
    corpus: CorpusOpt = ...,  # type: ignore[assignment]
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    plan_file: PlanFileOpt = None,
    annotator: AnnotatorOpt = None,
    llm: LLMOpt = None,
    llm_model: LLMModelOpt = None,
    sample_fraction: SampleFractionOpt = None,
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Encoder to fine-tune from: a path or hub id (default: packaged all-MiniLM-L6-v2).")] = None,
    parent: Annotated[Optional[str], typer.Option("--parent", help="Registered version to continue from (NAME, NAME@alias, NAME/N) instead of the base model.")] = None,
    model_name: Annotated[Optional[str], typer.Option("--model-name", help="Registered model name (default: FALCONER_MODEL_NAME or falconer-metamodel).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Most fine-tuning epochs (early stopping usually ends sooner).")] = None,
    unlabeled: UnlabeledOpt = True,
    no_replay: Annotated[bool, typer.Option("--no-replay", help="With --parent: do not rehearse the earlier tasks' annotations (the child may forget them).")] = False,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Annotate in this many rounds: a random first half of the sample, then batches the re-tuned metamodel is least sure of, stopping early once the held-out score's lower bound clears the gate.")] = 1,
    shard_size: Annotated[Optional[int], typer.Option("--shard-size", min=1, help="Texts per execution shard (the unit of resumption).")] = None,
    runner: RunnerOpt = None,
    workers: WorkersOpt = None,
    dask_address: DaskAddressOpt = None,
    run_folder: RunFolderOpt = None,
    cascade: CascadeOpt = None,
    cascade_delta: CascadeDeltaOpt = 0.05,
    llm_budget: LLMBudgetOpt = None,
    audit: AuditOpt = 0,
    records: Annotated[int, typer.Option("--records", min=0, help="Mined records to print at the end.")] = 5,
) -> None:
    """Mine a corpus end to end: plan, sample, annotate, fine-tune, evaluate, register, execute."""
    if not instruction and plan_file is None:
        from falconer_core.errors import ConfigError

        raise ConfigError("give an INSTRUCTION to plan, or a plan file with --plan")
    # the cascade defers to the LLM named with --llm, else an endpoint: never silently to SmolLM2
    cascading = cascade_settings(cascade, delta=cascade_delta, budget=llm_budget, llm=llm, llm_model=llm_model,
                                 audit=audit)
    llm = _default_llm(llm)
    run_mine(
        instruction=instruction, corpus=corpus, text_column=text_column, id_column=id_column,
        plan_file=plan_file, annotator=annotator or llm, llm=llm, llm_model=llm_model,
        sample_fraction=sample_fraction, base_model=base_model, parent=parent, model_name=model_name,
        epochs=epochs, unlabeled=unlabeled, replay=not no_replay, rounds=rounds, shard_size=shard_size, records=records, runner=runner,
        workers=workers, dask_address=dask_address, run_folder=run_folder, cascade=cascading,
    )


def run_mine(
    *,
    instruction: str | None,
    corpus: Path,
    text_column: str,
    id_column: str | None,
    plan_file: Path | None,
    annotator: str,
    llm: str,
    llm_model: str | None,
    sample_fraction: float | None,
    base_model: str | None,
    parent: str | None,
    model_name: str | None,
    epochs: int | None,
    unlabeled: bool,
    shard_size: int | None,
    replay: bool = True,
    rounds: int = 1,
    records: int,
    runner: str | None,
    workers: int | None,
    dask_address: str | None,
    run_folder: str | None,
    cascade: Any = None,
) -> None:
    """Check the inputs, run the `mine` flow, print records, scores and where to look."""
    snapshot, source = _check_corpus(corpus, text_column, id_column)
    chosen = _check_plan(plan_file)

    from falconer_core.annotators.choice import AnnotatorChoice
    from falconer_core.llm.choice import LLMChoice
    from falconer_core.sampling import SamplingSettings
    from falconer_core.sampling.active import ActiveSettings
    from falconer_core.training import TrainingSettings
    from flows.parameters import IncubationSettings, TaskSpec

    parameters: dict[str, Any] = {
        "corpus": source,
        "task": TaskSpec(
            instruction=instruction, plan=chosen,
            annotator=AnnotatorChoice(name=annotator, model=llm_model if annotator != "gold" else None),
            planner=LLMChoice(backend=llm, model=llm_model), base_model=base_model, parent=parent, model_name=model_name,
        ),
        "incubation": IncubationSettings(
            sampling=SamplingSettings(**({"fraction": sample_fraction} if sample_fraction else {})),
            training=TrainingSettings(progress=False, unlabeled=unlabeled, replay=replay, **({"epochs": epochs} if epochs else {})),
            active=ActiveSettings(rounds=rounds),
        ),
        "execution": execution_settings(shard_size=shard_size, runner=runner, workers=workers,
                                        dask_address=dask_address, run_folder=run_folder),
        "cascade": cascade,
    }
    if chosen is not None:
        print_plan(chosen.render(), title=f"plan from {plan_file}")
    print_note(f"mining {snapshot.n_texts:,} texts from {corpus}, {_corpus_version(snapshot.corpus_id, snapshot.n_texts)} "
               f"(annotator: {parameters['task'].annotator.identity()})")

    from flows import mine as mine_flow

    result, flow_run_id = _run_flow(mine_flow, **parameters)
    print_corpus_ran(snapshot, result.execution.corpus_id, result.execution.n_texts)
    from falconer_cli.results import print_mine_result

    print_mine_result(result, flow_run_id, records=records)


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------


@app.command("plan")
@guarded
def plan(
    instruction: Annotated[str, typer.Argument(help="What to mine, in plain words.")],
    output_spec: Annotated[Optional[str], typer.Option("--output-spec", help="Fields the output record must have, comma-separated (e.g. lecturer,profession).")] = None,
    llm: LLMOpt = None,
    llm_model: LLMModelOpt = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the plan to this YAML (or .json) file.")] = None,
) -> None:
    """Have an LLM plan an instruction as label/span steps, a filter and output fields."""
    from falconer_core.llm import make_llm_client
    from falconer_core.llm.choice import LLMChoice
    from falconer_core.plan.planner import plan_instruction
    from falconer_core.settings import Settings

    choice = LLMChoice(backend=_default_llm(llm), model=llm_model)
    print_note(f"planning with {choice.identity()}")
    client = make_llm_client(choice.llm_settings(Settings().llm_cache_dir))
    fields = [f.strip() for f in output_spec.split(",") if f.strip()] if output_spec else None
    result = plan_instruction(instruction, client, output_spec=fields)
    print_plan(result.render())
    if output is not None:
        result.save(output)
        console.print(f"saved to {output}; run it with: falconer mine --plan {output} --corpus ...")
    else:
        console.print(result.to_yaml(), markup=False, highlight=False)


# ---------------------------------------------------------------------------------------------
# execute and evaluate
# ---------------------------------------------------------------------------------------------


@app.command("execute")
@guarded
def execute(
    model: Annotated[str, typer.Argument(help="Registered model: NAME (with --plan, that task's champion; else its newest task champion), NAME@champion-<plan_hash>, NAME@alias or NAME/version.")],
    corpus: CorpusOpt = ...,  # type: ignore[assignment]
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    plan_file: Annotated[Optional[Path], typer.Option("--plan", help="Plan file to run (default: the plan the model was trained for); with a bare NAME, run by that task's champion.")] = None,
    shard_size: Annotated[Optional[int], typer.Option("--shard-size", min=1, help="Texts per shard (the unit of resumption).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Windows per forward pass.")] = None,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Output run id (default: derived from model, plan and corpus, so a re-run resumes).")] = None,
    runner: RunnerOpt = None,
    workers: WorkersOpt = None,
    dask_address: DaskAddressOpt = None,
    run_folder: RunFolderOpt = None,
    precision: PrecisionOpt = None,
    no_reuse: Annotated[bool, typer.Option("--no-reuse", help="Execute every shard, even those another run already did on the same texts.")] = False,
    cascade: CascadeOpt = None,
    cascade_delta: CascadeDeltaOpt = 0.05,
    llm_budget: LLMBudgetOpt = None,
    cascade_llm: CascadeLLMOpt = None,
    llm_model: LLMModelOpt = None,
    audit: AuditOpt = 0,
    records: Annotated[int, typer.Option("--records", min=0, help="Mined records to print at the end.")] = 5,
    drift: Annotated[bool, typer.Option("--drift/--no-drift", help="End with the drift check: the model's confidences on a seeded sample of up to 2,000 texts against its reference (--no-drift: skip it).")] = True,
    drift_llm: Annotated[Optional[str], typer.Option("--drift-llm", help="'openai' or 'local': the LLM that audits a fired drift signal on 50 texts (default: the cascade's LLM; none: 'drift suspected (no audit)').")] = None,
    local: Annotated[Optional[bool], typer.Option("--local/--flow", help="--local: run the flow's steps in this process without a Prefect server (same run id, rows and run record; no flow run in the Prefect UI); --flow: always a Prefect flow. Default: --local for fewer than 1,000 texts on the sequential runner without --cascade and without PREFECT_API_URL, else --flow.")] = None,
) -> None:
    """Run a registered metamodel over a whole corpus; outputs go to the DuckDB store."""
    cascading = cascade_settings(cascade, delta=cascade_delta, budget=llm_budget, llm=cascade_llm,
                                 llm_model=llm_model, audit=audit)
    snapshot, source = _check_corpus(corpus, text_column, id_column)
    chosen = _check_plan(plan_file)

    execution = execution_settings(shard_size=shard_size, batch_size=batch_size, run_id=run_id, runner=runner,
                                   workers=workers, dask_address=dask_address, run_folder=run_folder,
                                   precision=precision, reuse=False if no_reuse else None)
    from falconer_core.annotators.choice import AnnotatorChoice
    from falconer_core.drift.reference import DriftSettings
    from falconer_core.errors import ConfigError

    if drift_llm not in (None, "openai", "local"):
        raise ConfigError(f"--drift-llm is 'openai' or 'local', not {drift_llm!r}")
    checking = DriftSettings(check=drift, audit_llm=AnnotatorChoice(name=drift_llm, model=llm_model) if drift_llm else None)
    note = f" (cascade to {cascading.llm.identity()}: {cascade}, delta {cascade_delta})" if cascading else ""
    print_note(f"executing {model} over {snapshot.n_texts:,} texts from {corpus}, "
               f"{_corpus_version(snapshot.corpus_id, snapshot.n_texts)}{note}")
    from falconer_core.execution.inprocess import SMALL_JOB_TEXTS, execute_in_process, runs_in_process

    if runs_in_process(snapshot.n_texts, execution, cascade=cascading is not None,
                       api_url=os.environ.get("PREFECT_API_URL"), asked=local):
        if local is None:
            print_note(f"a small job (< {SMALL_JOB_TEXTS:,} texts): running here without a Prefect server; "
                       "--flow runs it as a Prefect flow")
        result = execute_in_process(model=model, corpus=source, plan=chosen, execution=execution, log=print_note,
                                    drift=checking)
        flow_run_id = None
    else:
        from flows import execute as execute_flow

        result, flow_run_id = _run_flow(
            execute_flow, model=model, corpus=source, plan=chosen, execution=execution, cascade=cascading, drift=checking,
        )
    print_corpus_ran(snapshot, result.corpus_id, result.n_texts)
    from falconer_cli.results import print_execution_result

    print_execution_result(result, flow_run_id, records=records)


@app.command("evaluate")
@guarded
def evaluate(
    model: Annotated[str, typer.Argument(help="Registered model: NAME (its newest task champion), NAME@champion-<plan_hash>, NAME@alias or NAME/version.")],
    corpus: CorpusOpt = ...,  # type: ignore[assignment]
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    plan_file: Annotated[Optional[Path], typer.Option("--plan", help="Plan file (default: the plan the model was trained for).")] = None,
    annotator: AnnotatorOpt = None,
    llm_model: LLMModelOpt = None,
    sample_fraction: SampleFractionOpt = None,
) -> None:
    """Score a registered metamodel against an annotator on a sample of a corpus, step by step."""
    snapshot, source = _check_corpus(corpus, text_column, id_column)
    chosen = _check_plan(plan_file)

    from falconer_core.annotators.choice import AnnotatorChoice
    from falconer_core.sampling import SamplingSettings

    name = annotator or _default_llm(None)
    choice = AnnotatorChoice(name=name, model=llm_model if name != "gold" else None)
    sampling = SamplingSettings(**({"fraction": sample_fraction} if sample_fraction else {}))
    print_note(f"evaluating {model} against {choice.identity()} on a sample of {snapshot.n_texts:,} texts")

    from flows import evaluate as evaluate_flow

    result, flow_run_id = _run_flow(
        evaluate_flow, model=model, corpus=source, plan=chosen, annotator=choice, sampling=sampling
    )
    from falconer_cli.results import print_evaluation_result

    print_evaluation_result(result, flow_run_id)
