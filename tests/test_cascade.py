"""Cascades: the guarantee on synthetic scores with known truth (the target holds in at least
1 - delta of seeded trials), the bounds it rests on, its settings, and real cascade runs of the
execute flow against an OpenAI-compatible server on 127.0.0.1 answering from gold labels:
routing with `source`/`in_band` rows, budget exhaustion, no LLM configured, resume, audit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from falconer_core.cascade import (
    AuditResult,
    Calibration,
    CascadeReport,
    CascadeSettings,
    ShardCounts,
    StepThreshold,
    bernstein_upper,
    binomial_interval,
    binomial_lower,
    binomial_upper,
    kept_answers,
    label_threshold,
    span_threshold,
)
from falconer_core.errors import ConfigError, StoreError
from falconer_core.execution import FILTER_FIELD, ExecutionSettings
from falconer_core.settings import Settings
from falconer_core.store import Store
from tests.llm_server import Annotator, ScriptedLLMServer, asked
from tests.mining_corpus import PLAN, register_untrained, tweets

N_WORLD, N_CALIBRATION, TRIALS, DELTA = 20_000, 800, 120, 0.05


# -- the guarantee on synthetic scores ---------------------------------------------------------------


def _world(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Proxy scores and LLM answers: the proxy is informative but miscalibrated (overconfident)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.4, 0.4, N_WORLD)
    return p, rng.random(N_WORLD) < 0.12 + 0.76 * p


def _achieved(metric: str, p: np.ndarray, y: np.ndarray, lower: float, upper: float) -> tuple[float, float]:
    """The metric of the cascade's outputs against the LLM on the whole world, and the LLM share."""
    kept_true, kept_false = kept_answers(p, lower, upper)
    band = ~(kept_true | kept_false)
    out = np.where(band, y, p >= 0.5)
    value = {
        "accuracy": (out == y).mean(),
        "precision": (out & y).sum() / max(out.sum(), 1),
        "recall": (out & y).sum() / y.sum(),
    }[metric]
    return float(value), float(band.mean())


@pytest.mark.parametrize(("metric", "target"), [("accuracy", 0.95), ("accuracy", 0.9), ("precision", 0.92), ("recall", 0.95)])
def test_the_target_holds_in_at_least_one_minus_delta_of_trials_and_the_band_is_not_everything(metric, target):
    rng = np.random.default_rng(1)
    misses, shares = 0, []
    for trial in range(TRIALS):
        p, y = _world(trial)
        sample = rng.choice(N_WORLD, N_CALIBRATION, replace=False)
        chosen = label_threshold("s", metric, target, p[sample], y[sample], DELTA)
        value, share = _achieved(metric, p, y, chosen.lower, chosen.upper)
        misses += value < target
        shares.append(share)
    assert misses / TRIALS <= DELTA
    assert np.mean(shares) < 0.9  # it does keep proxy answers: a cascade that routes all is trivially safe


def test_without_the_bound_the_plug_in_threshold_misses_often():
    """What the bound buys: at delta 0.5 the bound is about the observed rate, and the target is
    missed far more often than 5% of the time (so the test above can fail)."""
    rng = np.random.default_rng(1)
    misses = 0
    for trial in range(TRIALS // 2):
        p, y = _world(trial)
        sample = rng.choice(N_WORLD, N_CALIBRATION, replace=False)
        chosen = label_threshold("s", "accuracy", 0.95, p[sample], y[sample], 0.5)
        misses += _achieved("accuracy", p, y, chosen.lower, chosen.upper)[0] < 0.95
    assert misses / (TRIALS // 2) > 3 * DELTA


def test_a_target_the_proxy_already_meets_keeps_every_proxy_answer():
    p, y = _world(0)
    y = p >= 0.5  # the proxy agrees with the LLM everywhere
    chosen = label_threshold("s", "accuracy", 0.9, p[:N_CALIBRATION], y[:N_CALIBRATION], DELTA)
    assert chosen.band_share == 0.0 and chosen.certified >= 0.9


def test_an_unreachable_target_sends_every_text_to_the_llm():
    rng = np.random.default_rng(0)
    p, y = rng.random(200), rng.random(200) < 0.5  # the proxy knows nothing
    chosen = label_threshold("s", "accuracy", 0.99, p, y, DELTA)
    assert chosen.band_share == 1.0 and all(chosen.in_band(x) for x in p)


def test_span_f1_target_holds_in_at_least_one_minus_delta_of_trials():
    rng = np.random.default_rng(2)
    misses = 0
    for trial in range(TRIALS):
        world = np.random.default_rng(trial)
        q = world.uniform(0.5, 1.0, N_WORLD)
        f1 = np.clip(world.normal(0.2 + 0.8 * (q - 0.5) * 2, 0.15), 0, 1)  # surer texts agree more
        both = world.random(N_WORLD) < 0.6
        sample = rng.choice(N_WORLD, N_CALIBRATION, replace=False)
        chosen = span_threshold("people", 0.85, q[sample], f1[sample], both[sample], DELTA)
        kept = both & (q >= chosen.upper)
        achieved = 1 - np.where(kept, 1 - f1, 0.0)[both].mean()
        misses += achieved < 0.85
    assert misses / TRIALS <= DELTA


def test_bounds_are_exact_clopper_pearson_and_bernstein_is_above_the_mean():
    assert binomial_upper(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-9)
    assert binomial_lower(100, 100, 0.05) == pytest.approx(0.05 ** (1 / 100), rel=1e-9)
    low, high = binomial_interval(45, 50)
    assert low < 0.9 < high
    losses = [0.0] * 95 + [1.0] * 5
    assert 0.05 < bernstein_upper(losses, 0.05) < 0.25
    assert binomial_upper(3, 0, 0.05) == 1.0 and bernstein_upper([0.0], 0.05) == 1.0


class _Counting:
    """An LLM stand-in that answers from known labels and counts the texts it was asked."""

    def __init__(self, truth: dict[str, bool]) -> None:
        self.truth, self.asked = truth, 0

    def get_label(self, texts, instruction):
        from falconer_core.types import LabelResult

        self.asked += len(texts)
        return [LabelResult(self.truth[t], 1.0) for t in texts]

    def get_span(self, texts, instruction):
        return [[] for _ in texts]


@pytest.mark.parametrize(("agreement", "stages"), [(1.0, [200]), (0.5, [200, 400, 800, 1000])])
def test_calibration_stops_early_when_the_proxy_already_meets_the_target(agreement, stages):
    from falconer_core.cascade import ScoredProxy, calibrate
    from falconer_core.execution import LabelOutcome, OutputRecord, StepTrace
    from falconer_core.plan import Plan

    plan = Plan.from_dict({"steps": [{"name": "spam", "op": "label", "instruction": "Spam?"}], "filter": "spam"})
    rng = np.random.default_rng(0)
    ids = [f"m{i}" for i in range(1000)]
    truth = dict(zip(ids, rng.random(1000) < 0.3))
    says = {i: truth[i] if rng.random() < agreement else rng.random() < 0.5 for i in ids}
    records = [
        OutputRecord(id=i, passed=says[i], fields={}, sources={}, steps={"spam": StepTrace(
            op="label", instruction="Spam?", result=LabelOutcome(value=says[i], confidence=0.99 if agreement == 1 else 0.6),
        )})
        for i in ids
    ]
    llm = _Counting(truth)
    chosen = calibrate(plan, CascadeSettings(target="accuracy=0.9", llm="local"), ids, ids, ScoredProxy(None), llm,
                       proxy_records=records, n_corpus=100_000)
    assert chosen.stages == stages and chosen.n_texts == llm.asked == stages[-1]
    assert chosen.thresholds[0].delta == pytest.approx(0.05 / 4)  # every planned stage is tested at delta / 4


@pytest.mark.parametrize(
    ("target", "message"),
    [("accuracy", "METRIC=VALUE"), ("f1=0.9", "unknown cascade metric"), ("accuracy=1.2", "strictly between"),
     ("accuracy=0.9,recall=0.9", "one label target"), ("accuracy=high", "not a number"), ("", "needs a target")],
)
def test_bad_cascade_targets_are_refused_clearly(target, message):
    with pytest.raises(ValueError, match=message):  # a ConfigError, wrapped by pydantic's ValidationError
        CascadeSettings(target=target)


def test_no_llm_configured_is_refused_before_any_work(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="needs an LLM to defer to"):
        CascadeSettings(target="accuracy=0.9").check_llm()
    CascadeSettings(target="accuracy=0.9", llm="local").check_llm()  # the embedded one needs no endpoint
    with pytest.raises(ValueError, match="not gold"):
        CascadeSettings(target="accuracy=0.9", llm="gold")


# -- the run's report -----------------------------------------------------------------------------------


def _threshold(step: str = "s") -> StepThreshold:
    return StepThreshold(step=step, op="label", metric="accuracy", target=0.9, lower=0.1, upper=0.9, delta=0.05, n=40,
                         certified=0.91, observed=0.95, band_share=0.2)


def test_shard_counts_add_up_and_sum_only_numeric_usage():
    total = ShardCounts.total([
        ShardCounts(band_texts=3, llm_texts=2, over_budget=1, llm_usage={"calls": 2, "cost_usd": 0.5, "model": "x"}),
        ShardCounts(band_texts=1, llm_usage={"calls": 1, "cached": True}),
        ShardCounts(),
    ])
    assert total == ShardCounts(band_texts=4, llm_texts=2, over_budget=1, llm_usage={"calls": 3, "cost_usd": 0.5})


def test_a_cascade_report_comes_from_calibration_and_keeps_an_audit_until_a_new_one():
    calibration = Calibration(thresholds=[_threshold()], positions=[1, 2], ids=["a", "b"], stages=[2], llm_records={},
                              usage={"calls": 1})
    report = CascadeReport.from_calibration(calibration, CascadeSettings(target="accuracy=0.9", llm_budget=10, llm="local"))
    assert (report.calibration_texts, report.budget_left_for_shards, report.llm_budget) == (2, 8, 10)
    counted = report.with_counts(ShardCounts(band_texts=5, llm_texts=4, over_budget=1, llm_usage={"calls": 4}))
    assert (counted.band_texts, counted.llm_texts, counted.over_budget, counted.llm_usage) == (5, 4, 1, {"calls": 4})
    audit = AuditResult(n_texts=3, agreement=1.0, low=0.3, high=1.0)
    audited = counted.model_copy(update={"audit": audit}).merged_into(None)
    assert CascadeReport.model_validate(audited) == counted.model_copy(update={"audit": audit})
    again = counted.model_copy(update={"llm_texts": 6}).merged_into(audited)  # a later report without an audit
    assert again["llm_texts"] == 6 and again["audit"] == audit.model_dump()
    assert again["thresholds"] == [_threshold().model_dump()]  # the JSON the store always kept


# -- cascade runs of the execute flow -----------------------------------------------------------------

N_TEXTS = 120
_GOLD = {row.text: (bool(row.mentions_place), json.loads(row.people)) for row in tweets(N_TEXTS, seed=7).itertuples()}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    folder = tmp_path_factory.mktemp("falconer-cascade")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FALCONER_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def model(home, tiny_encoder_path) -> str:
    """A registered tiny metamodel with an untrained head: unsure of nearly everything."""
    return register_untrained(home, tiny_encoder_path, "cascade-model")


@pytest.fixture(scope="module")
def corpus(home):
    from falconer_core.corpus import CorpusSource

    path = home / "tweets.csv"
    tweets(N_TEXTS, seed=7).to_csv(path, index=False)
    return CorpusSource(path=str(path), id_column="tweet_id", name="tweets")


@pytest.fixture()
def server():
    with ScriptedLLMServer(handler=Annotator(lambda t, _: _GOLD[t][0], lambda t, _: _GOLD[t][1])) as running:
        yield running


def _cascade(server, **options) -> CascadeSettings:
    llm = {"name": "openai", "base_url": server.url, "model": "test-model", "batch_size": 8}
    return CascadeSettings(**{"target": "accuracy=0.9", "calibration_size": 40, "llm": llm, **options})


def _rows(run_id: str) -> pd.DataFrame:
    with Store(Settings().store_path) as store:
        return store.outputs(run_id)


def _verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    verdicts = frame[frame["field"] == FILTER_FIELD].set_index("text_id")
    assert len(verdicts) == N_TEXTS and verdicts.index.is_unique  # every text once: nothing lost or doubled
    return verdicts


def test_a_cascade_run_answers_the_band_with_the_llm_and_says_so_per_row(home, model, corpus, server, prefect_harness):
    from flows import execute

    settings = ExecutionSettings(shard_size=30)
    proxy = execute(model, corpus, execution=settings)
    result = execute(model, corpus, execution=settings, cascade=_cascade(server, audit_size=30))
    assert result.run_id != proxy.run_id and result.run_id.startswith("cascade-")
    verdicts = _verdicts(_rows(result.run_id))
    text_of = dict(zip(tweets(N_TEXTS, seed=7)["tweet_id"], tweets(N_TEXTS, seed=7)["text"]))
    llm = verdicts[verdicts["source"] == "llm"]
    assert len(llm) > 0 and set(verdicts["source"]) <= {"proxy", "llm"}
    assert all((value == "true") == _GOLD[text_of[i]][0] for i, value in llm["value"].items())  # the LLM's answers
    assert (verdicts.loc[verdicts["source"] == "proxy", "in_band"] == False).all()  # noqa: E712 - no budget: band all routed
    report = result.cascade
    (threshold,) = report.thresholds
    assert threshold.step == "mentions_place" and threshold.n == 40
    assert report.llm_texts == len(llm) and report.over_budget == 0
    assert report.llm_usage["calls"] > 0 and report.calibration_texts == 40
    agreement = (verdicts["value"] == [str(_GOLD[text_of[i]][0]).lower() for i in verdicts.index]).mean()
    assert agreement >= 0.9  # the target, relative to this LLM
    audit = report.audit
    assert audit.n_texts == 30 and audit.low <= audit.agreement <= audit.high
    with Store(Settings().store_path) as store:
        assert store.cascade_report(result.run_id) == report
        assert store.run(result.run_id)["report"]["thresholds"] == [t.model_dump() for t in report.thresholds]
    from falconer_core.registry import Registry

    registry = Registry.from_settings()
    (logged,) = registry.client.search_runs(
        [registry.experiment_id], filter_string=f"tags.`falconer.execution_run` = '{result.run_id}'"
    )
    assert logged.data.metrics["audit.agreement"] == audit.agreement
    assert logged.data.tags["falconer.model_version"] == model
    proxy_rows = _rows(proxy.run_id)
    assert set(proxy_rows["source"]) == {"proxy"} and proxy_rows["in_band"].isna().all()


def test_a_span_target_calibrates_the_span_step_and_llm_texts_carry_the_llm_spans(home, model, corpus, server, prefect_harness):
    from flows import execute

    result = execute(
        model, corpus, execution=ExecutionSettings(shard_size=60), cascade=_cascade(server, target="accuracy=0.9,span_f1=0.9"),
    )
    assert [t.step for t in result.cascade.thresholds] == ["mentions_place", "people"]
    assert result.cascade.thresholds[1].op == "span" and result.cascade.thresholds[0].delta == 0.025
    frame = _rows(result.run_id)
    text_of = dict(zip(tweets(N_TEXTS, seed=7)["tweet_id"], tweets(N_TEXTS, seed=7)["text"]))
    people = frame[(frame["field"] == "people") & (frame["source"] == "llm") & frame["value"].notna()]
    assert len(people) > 0
    assert all(value in _GOLD[text_of[i]][1] for i, value in zip(people["text_id"], people["value"]))


def test_a_spent_budget_keeps_the_proxy_answer_and_records_which_texts(home, model, corpus, server, prefect_harness):
    from flows import execute

    result = execute(
        model, corpus, execution=ExecutionSettings(shard_size=30), cascade=_cascade(server, llm_budget=50, seed=3)
    )
    verdicts = _verdicts(_rows(result.run_id))
    report = result.cascade
    assert report.llm_texts <= 50 and report.llm_texts == (verdicts["source"] == "llm").sum()
    over = verdicts[verdicts["in_band"].fillna(False) & (verdicts["source"] == "proxy")]
    assert report.over_budget == len(over) > 0  # the untrained proxy's band is far bigger than 10 texts
    assert report.budget_left_for_shards == 10


def test_a_cascade_run_that_failed_mid_way_resumes_without_lost_or_repeated_rows(
    home, model, corpus, server, prefect_harness, monkeypatch,
):
    import falconer_core.execution as execution
    from flows import execute

    real, failed = execution.execute_shard, []

    def disk_full_once_on_shard_1(model, plan, corpus, shard, **kwargs):
        if shard.index == 1 and not failed:
            failed.append(1)
            raise StoreError("no space left on device (simulated)")
        return real(model, plan, corpus, shard, **kwargs)

    monkeypatch.setattr(execution, "execute_shard", disk_full_once_on_shard_1)
    cascade, settings = _cascade(server, seed=5), ExecutionSettings(shard_size=30)
    with pytest.raises(StoreError, match="no space left"):
        execute(model, corpus, execution=settings, cascade=cascade)
    calls = server.calls
    resumed = execute(model, corpus, execution=settings, cascade=cascade)
    assert resumed.shards_run == 1 and resumed.shards == 4
    shard_1 = set(tweets(N_TEXTS, seed=7)["text"][30:60])
    asked_now = {text for body in server.requests[calls:] for text in asked(body)[2]}
    assert asked_now and asked_now <= shard_1  # only shard 1's band: calibration was not asked again
    _verdicts(_rows(resumed.run_id))


@pytest.mark.parametrize("command", [["execute", "any-model"], ["mine", "--plan", "missing.yaml"]])
def test_the_cli_refuses_a_cascade_without_an_llm_before_reading_anything(home, monkeypatch, command):
    from typer.testing import CliRunner

    from falconer_cli.main import app

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = [*command, "--corpus", str(home / "missing.csv"), "--cascade", "accuracy=0.9"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "needs an LLM to defer to" in result.output
    assert "missing" not in result.output  # refused before the corpus or plan was even looked at
    budget_alone = CliRunner().invoke(app, ["execute", "any-model", "--corpus", str(home / "missing.csv"), "--llm-budget", "5"])
    assert budget_alone.exit_code != 0 and "add --cascade" in budget_alone.output


def test_a_budget_too_small_to_calibrate_is_refused_before_any_llm_call(tmp_path, server):
    from falconer_core.cascade import calibrate_corpus
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.metamodel import ModelSource
    from falconer_core.plan import Plan

    path = tmp_path / "tweets.csv"
    tweets(40).to_csv(path, index=False)
    snapshot = snapshot_corpus(CorpusSource(path=str(path), id_column="tweet_id"), tmp_path / "corpora")
    with pytest.raises(ConfigError, match="allows only 5"):
        calibrate_corpus(ModelSource.base("unused"), Plan.from_dict(PLAN), snapshot, _cascade(server, llm_budget=5))
    assert server.calls == 0
