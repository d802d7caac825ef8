"""The drift check every execute ends with: the Clopper-Pearson interval and the declare rule, the
verdict kept with the run in the store and shown by `falconer runs`, and executes (flow and
in-process) of a registered model with a reference, audited by a fake LLM on 127.0.0.1."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from falconer_core.cascade.bounds import binomial_interval
from falconer_core.drift import DriftSettings, drift_report
from falconer_core.drift.reference import Confidences
from falconer_core.drift.verdict import (
    DECLARED,
    NO_DRIFT,
    NO_REFERENCE,
    NOT_CONFIRMED,
    SUSPECTED,
    TOO_FEW,
    DriftVerdict,
    agreement_floor,
    declare,
)
from falconer_core.execution import ExecutionSettings
from falconer_core.store import Store
from tests import talks as tk
from tests.llm_server import Annotator, ScriptedLLMServer
from tests.test_drift import _reference, _sample, three_versions
from tests.test_registry import checkpoint, log, migrated_db, new_registry  # noqa: F401 (fixtures)


# ------------------------------------------------------------------------- interval and rule
def test_the_clopper_pearson_interval_has_its_known_values():
    low, high = binomial_interval(5, 10)
    assert (low, high) == (pytest.approx(0.187086, abs=1e-6), pytest.approx(0.812914, abs=1e-6))
    assert binomial_interval(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))  # 0.308497
    assert binomial_interval(10, 10) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    low, high = binomial_interval(45, 50)  # R: binom.test(45, 50)$conf.int
    assert (low, high) == (pytest.approx(0.781865, abs=1e-6), pytest.approx(0.966725, abs=1e-6))


def test_drift_is_declared_only_when_the_upper_bound_is_below_the_floor():
    assert agreement_floor(gate=0.8, reference_agreement=0.9, max_drop=0.05) == pytest.approx(0.85)
    assert agreement_floor(gate=0.9, reference_agreement=0.8, max_drop=0.05) == 0.9  # the higher one
    assert agreement_floor(gate=None, reference_agreement=0.9, max_drop=None) is None
    assert agreement_floor(gate=0.7, reference_agreement=None, max_drop=0.05) == 0.7
    assert declare(0.84, 0.85) and not declare(0.85, 0.85) and not declare(0.9, 0.85)
    assert not declare(0.0, None)  # no floor known: never declared
    # 40 of 50 agree: [0.663, 0.900]; below a 0.95 floor, not below a 0.85 one
    high = binomial_interval(40, 50)[1]
    assert declare(high, 0.95) and not declare(high, 0.85)


def test_a_plan_without_a_filter_is_audited_on_its_label_steps():
    from falconer_core.drift.check import audited_plan
    from falconer_core.plan import Plan

    assert audited_plan(tk.TALKS) is tk.TALKS
    steps = [{"name": "is_science", "op": "label", "instruction": "Is this talk about science?"},
             {"name": "is_music", "op": "label", "instruction": "Is this talk about music?"},
             {"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"}]
    audited = audited_plan(Plan.from_dict({"steps": steps}))
    assert audited.filter_steps == ["is_science", "is_music"]
    assert [o.name for o in audited.outputs] == ["is_science", "is_music", "speaker"]  # the outputs unchanged
    assert audited_plan(Plan.from_dict({"steps": steps[2:]})) is None  # spans only: nothing to compare


class _Says:
    """A runner that finds a place in exactly the texts it is given, and no people."""

    def __init__(self, yes) -> None:
        self.yes = set(yes)

    def get_label(self, texts, instruction):
        from falconer_core.types import LabelResult

        return [LabelResult(t in self.yes, 1.0) for t in texts]

    def get_span(self, texts, instruction):
        return [[] for _ in texts]


def test_the_audit_counts_the_texts_where_the_proxy_and_the_auditor_agree_both_ways():
    from falconer_core.data import demo_plan
    from falconer_core.drift.check import Auditor, audit_sample

    texts = [f"tweet {i}" for i in range(10)]
    proxy, settings = _Says(texts[:6]), DriftSettings(audit_size=10)

    def audit(yes):
        return audit_sample(demo_plan(), texts, proxy, Auditor(annotator=_Says(yes), identity="stand-in"), settings,
                            0.75, 0.8)

    same = audit(texts[:6])  # agreeing on 6 passes and 4 rejections
    assert (same.n_texts, same.agreement, same.high, same.llm, same.floor) == (10, 1.0, 1.0, "stand-in", 0.75)
    assert audit(texts[:3]).agreement == 0.7  # the proxy's 3 extra passes disagree
    assert audit(texts[4:]).agreement == 0.2  # 2 passes in common, no rejection in common


# ----------------------------------------------------------------------------- store and CLI
def _verdict(run_id: str, status: str = DECLARED) -> DriftVerdict:
    import numpy as np

    rng = np.random.default_rng(0)
    draw = {"label": rng.beta(0.4, 0.8, 50), "span": 1.0 - rng.beta(0.5, 4.0, 50)}
    report = drift_report(_reference(draw), _sample(draw))
    return DriftVerdict(run_id=run_id, version="tweets/3", plan_hash="p", status=status,
                        declared=status == DECLARED, reason="because", report=report)


def test_the_verdict_round_trips_through_the_store_and_an_old_store_migrates(tmp_path):
    path = tmp_path / "falconer.duckdb"
    with Store(path) as store:
        store.upsert_run("r1", "execute")
        store.upsert_run("r2", "execute")
        verdict = _verdict("r1")
        store.record_drift(verdict)
        assert store.drift("r1") == verdict
        assert store.drift("r2") is None
        assert store.run("r1")["drift_status"] == DECLARED
        progress = store.run_progress().set_index("run_id")
        assert progress.loc["r1", "drift_status"] == DECLARED and pd.isna(progress.loc["r2", "drift_status"])
        # a version-3 file (before drift) gains the columns in place
        store.query("ALTER TABLE runs DROP COLUMN drift")
        store.query("ALTER TABLE runs DROP COLUMN drift_status")
        store.query("UPDATE falconer_meta SET value = '3' WHERE key = 'schema_version'")
    with Store(path) as store:
        assert store.query("SELECT value FROM falconer_meta WHERE key = 'schema_version'")["value"].tolist() == ["4"]
        assert store.drift("r1") is None
        store.record_drift(_verdict("r2", NO_DRIFT))
        assert store.drift("r2").status == NO_DRIFT


def test_falconer_runs_shows_each_runs_drift_status(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from falconer_cli.main import app

    monkeypatch.setenv("FALCONER_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    with Store(tmp_path / "falconer.duckdb") as store:
        for run_id in ("declared-run", "quiet-run", "old-run"):
            store.upsert_run(run_id, "execute")
        store.record_drift(_verdict("declared-run", DECLARED))
        store.record_drift(_verdict("quiet-run", SUSPECTED))
    shown = CliRunner().invoke(app, ["runs"])
    assert shown.exit_code == 0, (shown.output, shown.exception)
    lines = shown.stdout.splitlines()
    row = {run: next(line for line in lines if run in line) for run in ("declared-run", "quiet-run", "old-run")}
    assert any("drift" in line and "status" in line for line in lines)  # the header
    assert "drift detected" in row["declared-run"]
    assert "drift suspected (no audit)" in row["quiet-run"]
    assert "—" in row["old-run"] and "drift" not in row["old-run"]
    # a store where no run was checked yet keeps the table it had
    with Store(tmp_path / "falconer.duckdb") as store:
        store.query("UPDATE runs SET drift_status = NULL, drift = NULL")
    before = CliRunner().invoke(app, ["runs"])
    assert before.exit_code == 0 and "old-run" in before.stdout and "drift" not in before.stdout


# ----------------------------------------------------------------------- executes end to end
@pytest.fixture
def world(tmp_path, migrated_db, checkpoint, monkeypatch):  # noqa: F811
    """A home with a registered TALKS model whose reference is its own held-out texts (`same`),
    one whose label confidences were all 0 in its reference (`moved`: the real ones are a shift),
    one with no reference (`bare`), and a 12-text corpus of the same texts."""
    from falconer_core.corpus import CorpusSource

    folder, _ = checkpoint
    home = tmp_path / "home"
    monkeypatch.setenv("FALCONER_HOME", str(home))
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    registry = new_registry(home, migrated_db)
    built = three_versions(registry, folder)
    ids, texts, same, moved, bare, reference = (built[k] for k in ("ids", "texts", "same", "moved", "bare", "reference"))
    path = home / "talks.csv"
    pd.DataFrame({"id": ids, "text": texts}).to_csv(path, index=False)
    proxy = dict(zip(texts, measure(folder, texts).passed))  # what the proxy says of each text
    return {"registry": registry, "same": str(same), "moved": str(moved), "bare": str(bare), "proxy": proxy,
            "reference": reference, "corpus": CorpusSource(path=str(path), id_column="id", name="talks")}


def measure(folder, texts) -> Confidences:
    from falconer_core.drift import measure_confidences
    from falconer_core.metamodel.model import Metamodel

    return measure_confidences(Metamodel.load(str(folder)), tk.TALKS, texts)[0]


def _drift_metrics(registry, run_id: str) -> dict[str, float]:
    (logged,) = registry.client.search_runs(
        [registry.experiment_id], filter_string=f"tags.`falconer.execution_run` = '{run_id}'"
    )
    assert logged.info.run_name.endswith("-drift")
    return logged.data.metrics


def _in_process(model: str, corpus, run_id: str, **drift):
    from falconer_core.execution.inprocess import execute_in_process

    return execute_in_process(model=model, corpus=corpus, plan=None, drift=DriftSettings(**{"min_texts": 1, **drift}),
                              execution=ExecutionSettings(shard_size=5, run_id=run_id, reuse=False))


def test_the_execute_flow_and_the_small_job_path_record_the_same_drift_figures(world, prefect_harness):
    from flows import execute

    state = execute(world["same"], world["corpus"], drift=DriftSettings(min_texts=1),
                    execution=ExecutionSettings(shard_size=5, run_id="flow-same"),
                    return_state=True)
    by_flow = state.result()
    here = _in_process(world["same"], world["corpus"], "here-same")
    for result in (by_flow, here):
        verdict = result.drift
        assert verdict.status == NO_DRIFT and not verdict.declared and verdict.audit is None
        assert verdict.report.n_texts == 12 and [s.step for s in verdict.report.steps] == ["is_science", "speaker"]
        assert verdict.report.steps[0].ks == 0.0  # the reference's own texts: the same confidences
        with Store() as store:
            assert store.drift(result.run_id) == verdict
            assert store.run(result.run_id)["drift_status"] == NO_DRIFT
        metrics = _drift_metrics(world["registry"], result.run_id)
        assert metrics["drift.fired"] == 0.0 and metrics["drift.n_texts"] == 12.0
        assert metrics["drift.is_science.ks"] == pytest.approx(verdict.report.steps[0].ks)
        assert metrics["drift.is_science.band_share"] == pytest.approx(verdict.report.steps[0].band_share)
    assert by_flow.drift.model_dump(exclude={"run_id"}) == here.drift.model_dump(exclude={"run_id"})
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            key=ArtifactFilterKey(any_=["drift"]),
        ))
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [r["step"] for r in rows] == ["is_science", "speaker"] and NO_DRIFT in artifact.description

    # a version without a reference: a status, never an error, and nothing logged to MLflow
    bare = _in_process(world["bare"], world["corpus"], "here-bare")
    assert bare.drift.status == NO_REFERENCE and bare.drift.report is None
    assert not world["registry"].client.search_runs(
        [world["registry"].experiment_id], filter_string="tags.`falconer.execution_run` = 'here-bare'")
    off = _in_process(world["same"], world["corpus"], "here-off", check=False)
    assert off.drift is None
    with Store() as store:
        assert store.run("here-off")["drift_status"] is None


def test_a_fired_signal_without_an_llm_stands_as_suspected(world):
    result = _in_process(world["moved"], world["corpus"], "moved-no-llm")
    assert result.drift.status == SUSPECTED and not result.drift.declared and result.drift.audit is None
    assert result.drift.report.steps[0].shifted and "no LLM" in result.drift.reason
    assert _drift_metrics(world["registry"], "moved-no-llm")["drift.fired"] == 1.0


@pytest.mark.parametrize("llm_agrees", [False, True])
def test_a_fired_signal_is_audited_by_the_llm_and_declared_only_when_it_disagrees(world, llm_agrees):
    proxy = world["proxy"]

    def label(text: str, _instruction: str) -> bool:
        return proxy[text] if llm_agrees else not proxy[text]

    with ScriptedLLMServer(handler=Annotator(label, lambda t, _: [])) as server:
        llm = {"name": "openai", "base_url": server.url, "model": "test-model", "batch_size": 4}
        run_id = f"moved-audit-{llm_agrees}"
        result = _in_process(world["moved"], world["corpus"], run_id, audit_llm=llm, audit_size=10, gate=0.5)
        assert server.requests  # the LLM was asked
    verdict = result.drift
    audit = verdict.audit
    assert audit.n_texts == 10 and audit.llm == "openai:test-model" and audit.floor >= 0.5
    assert audit.low <= audit.agreement <= audit.high
    if llm_agrees:
        assert audit.agreement == 1.0 and audit.high == 1.0
        assert verdict.status == NOT_CONFIRMED and not verdict.declared
    else:
        assert audit.agreement == 0.0 and audit.high == pytest.approx(1 - 0.025 ** (1 / 10))
        assert verdict.status == DECLARED and verdict.declared and "below" in verdict.reason
    with Store() as store:
        assert store.drift(run_id) == verdict
    metrics = _drift_metrics(world["registry"], run_id)
    assert metrics["drift.declared"] == float(verdict.declared)
    assert metrics["drift.audit.agreement_hi"] == pytest.approx(audit.high)
    # the payload an event carries: plain JSON, the figures and the verdict
    payload = verdict.model_dump(mode="json")
    assert payload["declared"] == verdict.declared and payload["audit"]["n_texts"] == 10


def test_falconer_execute_prints_the_drift_status_and_no_drift_skips_it(world, monkeypatch):
    from typer.testing import CliRunner

    from falconer_cli.main import app

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    path = world["corpus"].path
    checked = CliRunner().invoke(app, ["execute", world["moved"], "--corpus", path, "--id-column", "id",
                                       "--run-id", "cli-checked"])
    assert checked.exit_code == 0, (checked.output, checked.exception)
    assert TOO_FEW in checked.stdout  # 12 texts: below drift.min_texts, not worth a check on a small job
    skipped = CliRunner().invoke(app, ["execute", world["moved"], "--corpus", path, "--id-column", "id",
                                       "--run-id", "cli-skipped", "--no-drift"])
    assert skipped.exit_code == 0, (skipped.output, skipped.exception)
    assert "drift" not in skipped.stdout
    with Store() as store:
        assert store.run("cli-checked")["drift_status"] == TOO_FEW and store.run("cli-skipped")["drift_status"] is None
    wrong = CliRunner().invoke(app, ["execute", world["moved"], "--corpus", path, "--id-column", "id", "--drift-llm", "gold"])
    assert wrong.exit_code == 2 and "--drift-llm" in wrong.stderr


def test_the_execute_flow_emits_the_drift_event_only_when_drift_is_declared(world, prefect_harness, monkeypatch):
    """The link from a run to the trigger: declared drift leaves `falconer.model.drift` for the
    version and task, with the drifted corpus and the verdict's figures; "not confirmed" none."""
    import tasks.drift_events as module
    from falconer_core.drift.event import DRIFT_EVENT
    from flows import execute

    sent: list[dict] = []
    monkeypatch.setattr(module, "emit_event", lambda **event: sent.append(event))
    proxy = world["proxy"]
    for agrees in (True, False):
        answer = Annotator(lambda text, _i, agrees=agrees: proxy[text] if agrees else not proxy[text], lambda t, _: [])
        with ScriptedLLMServer(handler=answer) as server:
            llm = {"name": "openai", "base_url": server.url, "model": "test-model", "batch_size": 4}
            result = execute(world["moved"], world["corpus"], drift=DriftSettings(audit_llm=llm, audit_size=10, gate=0.5, min_texts=1),
                             execution=ExecutionSettings(shard_size=5, run_id=f"flow-event-{agrees}"))
        assert result.drift.declared is not agrees
        assert len(sent) == (0 if agrees else 1)
    (event,) = sent
    assert event["event"] == DRIFT_EVENT
    assert event["resource"]["falconer.model"] == world["moved"]
    assert event["resource"]["falconer.plan"] == result.drift.plan_hash
    assert event["payload"]["corpus"]["path"] == world["corpus"].path
    assert event["payload"]["figures"]["status"] == DECLARED and event["payload"]["figures"]["audit"]["n_texts"] == 10
