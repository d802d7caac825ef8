"""Drift: the reference recorded at registration, the signals against it, and `falconer drift`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from falconer_core.annotators.annotation import annotate_sample
from falconer_core.drift import DriftReference, DriftSettings, StepReference, drift_report, expected_agreement
from falconer_core.drift.reference import Confidences
from falconer_core.drift.signals import DRIFT, NO_DRIFT, estimate_agreement, step_figures
from falconer_core.metamodel.model import Metamodel
from falconer_core.registry.drift import log_reference, read_reference, record_drift_reference
from tests import talks as tk
from tests.test_registry import checkpoint, log, migrated_db, new_registry  # noqa: F401 (fixtures)

SETTINGS = DriftSettings()


def _step(name: str, op: str, confidences: np.ndarray, agreement: float | None = None) -> StepReference:
    values = [float(c) for c in confidences]
    figures = step_figures(op, values, SETTINGS)
    return StepReference(step=name, op=op, confidences=values, true_share=figures["true_share"],
                         band_share=figures["band_share"], agreement=agreement, n_agreement=len(values),
                         expected=expected_agreement(op, values))


def _draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """A label step's P(true) (confident, mostly false) and a span step's confidence; `shift`
    is the share of texts from another domain (uncertain labels, shaky spans)."""
    label = rng.beta(0.4, 0.8, n)
    span = 1.0 - rng.beta(0.5, 4.0, n)
    other = rng.random(n) < shift
    label[other] = rng.beta(2.0, 2.0, other.sum())
    span[other] = 1.0 - rng.beta(2.0, 3.0, other.sum())
    return {"label": label, "span": span}


def _reference(draw: dict[str, np.ndarray]) -> DriftReference:
    steps = [_step("is_place", "label", draw["label"]), _step("people", "span", draw["span"])]
    return DriftReference(plan_hash="p", annotator="llm", n_texts=len(draw["label"]),
                          pass_rate=float(np.mean(draw["label"] >= 0.5)), steps=steps)


def _sample(draw: dict[str, np.ndarray]) -> Confidences:
    return Confidences(steps={"is_place": draw["label"].tolist(), "people": draw["span"].tolist()},
                       ops={"is_place": "label", "people": "span"}, passed=(draw["label"] >= 0.5).tolist())


# ------------------------------------------------------------------------------------- signals
def test_an_unchanged_corpus_rarely_fires_and_a_shifted_one_nearly_always_does():
    reference = _reference(_draw(np.random.default_rng(0), 200))
    unchanged = [drift_report(reference, _sample(_draw(np.random.default_rng(100 + s), 2000))) for s in range(20)]
    shifted = [drift_report(reference, _sample(_draw(np.random.default_rng(200 + s), 2000, shift=0.4))) for s in range(20)]
    assert sum(r.drift for r in unchanged) <= 2
    assert sum(r.drift for r in shifted) >= 19
    assert unchanged[0].threshold == pytest.approx(0.025)  # alpha 0.05 over two steps
    assert {r.verdict for r in unchanged} <= {NO_DRIFT, DRIFT} and shifted[0].verdict == DRIFT
    # the shift shows in the figures a user reads: more texts in the uncertain band
    ref_band, now_band = shifted[0].steps[0].band_share_reference, shifted[0].steps[0].band_share
    assert now_band > ref_band + 0.1


def test_false_alarms_stay_near_alpha_when_the_reference_is_redrawn_too():
    """The reference is itself a draw: over fresh (reference, sample) pairs of one corpus the
    Bonferroni KS rule fires at most about alpha of the time."""
    fired = sum(drift_report(_reference(_draw(np.random.default_rng(s), 200)),
                             _sample(_draw(np.random.default_rng(1000 + s), 2000))).drift for s in range(60))
    assert fired <= 8  # 5% of 60 is 3; 8 leaves room for chance (P(Binomial(60, .05) > 8) < 0.01)


def test_the_agreement_estimate_from_calibrated_probabilities_is_within_003():
    rng = np.random.default_rng(3)

    def world(n):
        p = rng.beta(0.6, 0.6, n)
        truth = rng.random(n) < p  # calibrated: the annotator says yes with probability p
        return p, float(np.mean((p >= 0.5) == truth))

    p, accuracy = world(2000)
    assert abs(expected_agreement("label", p.tolist()) - accuracy) <= 0.03
    ref_p, ref_accuracy = world(300)  # rescaled by a reference: still within 0.03
    estimate = estimate_agreement("label", p.tolist(), ref_accuracy, expected_agreement("label", ref_p.tolist()))
    assert abs(estimate - accuracy) <= 0.03
    # an over-confident proxy is corrected by the reference's observed / expected ratio
    sharp = np.clip(np.where(p >= 0.5, p + 0.1, p - 0.1), 0, 1)
    ref_sharp = np.clip(np.where(ref_p >= 0.5, ref_p + 0.1, ref_p - 0.1), 0, 1)
    raw = expected_agreement("label", sharp.tolist())
    fixed = estimate_agreement("label", sharp.tolist(), ref_accuracy, expected_agreement("label", ref_sharp.tolist()))
    assert abs(fixed - accuracy) < abs(raw - accuracy) and abs(fixed - accuracy) <= 0.03


# ------------------------------------------------------------------------------ the reference
def _talks(n: int) -> tuple[list[str], list[str]]:
    texts = [tk.TEXTS[i % 3].replace("Ada Byron", f"Ada Byron{i}") for i in range(n)]
    return [f"t{i}" for i in range(n)], texts


def three_versions(registry, folder, n: int = 12) -> dict:
    """Three versions of one checkpoint on `n` talks: `same` with its real reference, `moved` with a
    reference whose label confidences all sit at 0 (the model's real ones are a shift from it), and
    `bare` with none; and the talks' ids and texts."""
    ids, texts = _talks(n)
    annotations = annotate_sample(tk.TALKS, ids, texts, tk.RuleRunner(), annotator="rules")
    same, moved, bare = (log(registry, folder, plan=tk.TALKS) for _ in range(3))
    reference = record_drift_reference(registry, same, Metamodel.load(str(folder)), annotations, ids)
    log_reference(registry, moved, reference.model_copy(update={"steps": [
        reference.steps[0].model_copy(update={"confidences": [0.0] * n}), *reference.steps[1:]]}))
    return {"ids": ids, "texts": texts, "same": same, "moved": moved, "bare": bare, "reference": reference}


def test_the_reference_is_recorded_with_the_version_and_read_back(tmp_path, migrated_db, checkpoint):  # noqa: F811
    from falconer_core.metamodel import Metamodel

    folder, _ = checkpoint
    registry = new_registry(tmp_path / "state", migrated_db)
    ids, texts = _talks(12)
    annotations = annotate_sample(tk.TALKS, ids, texts, tk.RuleRunner(), annotator="rules")
    version, older = log(registry, folder, plan=tk.TALKS), log(registry, folder, plan=tk.TALKS)
    recorded = record_drift_reference(registry, version, Metamodel.load(str(folder)), annotations, ids[:9])
    assert read_reference(registry, version) == recorded
    assert read_reference(registry, older) is None
    assert recorded.n_texts == 9 and recorded.annotator == "rules" and recorded.plan_hash == tk.TALKS.hash
    label, span = recorded.steps  # per-span steps follow their text: not measured
    assert (label.step, label.op, span.step, span.op) == ("is_science", "label", "speaker", "span")
    assert len(label.confidences) == 9 and label.n_agreement == 9 and 0.0 <= label.agreement <= 1.0
    assert len(span.confidences) == sum(c >= 0.5 for c in label.confidences)  # spans run on passing texts only
    assert recorded.pass_rate == pytest.approx(label.true_share)
    # the same texts measured again are no drift: identical confidences
    from falconer_core.drift import measure_confidences

    again, _ = measure_confidences(Metamodel.load(folder), tk.TALKS, texts[:9])
    assert drift_report(recorded, again).verdict == NO_DRIFT


def test_the_register_task_records_the_reference():
    import inspect

    from tasks import registry as task_module

    assert "record_drift_reference(" in inspect.getsource(task_module.register.fn)


# --------------------------------------------------------------------------------- the command
def test_the_drift_command_prints_the_verdict_and_refuses_a_version_without_reference(
    tmp_path, migrated_db, checkpoint, monkeypatch,  # noqa: F811
):
    from typer.testing import CliRunner

    from falconer_cli.main import app

    folder, _ = checkpoint
    home = tmp_path / "home"
    monkeypatch.setenv("FALCONER_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")  # the whole table, step names unabridged
    registry = new_registry(home, migrated_db)
    built = three_versions(registry, folder)
    ids, texts, same, moved, bare, reference = (built[k] for k in ("ids", "texts", "same", "moved", "bare", "reference"))
    corpus = tmp_path / "corpus.csv"
    pd.DataFrame({"id": ids, "text": texts}).to_csv(corpus, index=False)

    ok = CliRunner().invoke(app, ["drift", str(same), "--corpus", str(corpus), "--id-column", "id"])
    assert ok.exit_code == 0, (ok.output, ok.exception)
    assert "no drift" in ok.stdout and "drift detected" not in ok.stdout and "is_science" in ok.stdout
    fired = CliRunner().invoke(app, ["drift", str(moved), "--corpus", str(corpus), "--id-column", "id", "--sample", "12"])
    assert fired.exit_code == 0, (fired.output, fired.exception)
    assert "drift detected" in fired.stdout
    missing = CliRunner().invoke(app, ["drift", str(bare), "--corpus", str(corpus), "--id-column", "id"])
    assert missing.exit_code == 2 and "no drift reference" in missing.stderr and "re-register" in missing.stderr
    other = log(registry, folder)  # registered for another plan than its reference was measured on
    log_reference(registry, other, reference)
    mismatch = CliRunner().invoke(app, ["drift", str(other), "--corpus", str(corpus), "--id-column", "id"])
    assert mismatch.exit_code == 2 and "another plan" in mismatch.stderr

