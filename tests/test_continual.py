"""Continual re-tuning: replay of earlier tasks, the gate over every task, one model serving many.

Replay sampling and the re-tune run on the rule-answered "talks" task and the tiny encoder; the
gate runs on a real sqlite MLflow registry with evaluations built to regress on purpose."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from falconer_core.annotators.annotation import annotate_sample
from falconer_core.evaluation import score_texts
from falconer_core.metamodel import Metamodel, ModelSource
from falconer_core.plan import Plan
from falconer_core.registry import Registry, champion_alias, register_checkpoint, render_lineage
from falconer_core.registry import tags as T
from falconer_core.registry.continual import earlier_tasks
from falconer_core.registry.registration import AncestorScores
from falconer_core.settings import Settings
from falconer_core.training import (
    Checkpoint,
    EarlierTask,
    HoldoutSettings,
    TrainingSettings,
    TrainingSummary,
    fine_tune_checkpoint,
    fine_tune_key,
    replay_examples,
)
from falconer_core.training.examples import flatten, step_examples
from falconer_core.training.loop import encode_examples, replay_draw, train
from tests import talks as tk

SPEAKERS = Plan.from_dict({"steps": [{"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"}]})


def _texts(n: int, name: str) -> list[str]:
    return [f"Speaker: {name} Byron{i}. {name} Byron{i} is a mathematician who talks about science {i}." for i in range(n)]


def _annotated(plan: Plan, n: int, prefix: str = "t"):
    """`n` texts answered by rules; each prefix names different texts (and ids)."""
    texts = _texts(n, "Ada" if prefix == "t" else "Tom")
    return annotate_sample(plan, [f"{prefix}{i}" for i in range(n)], texts, tk.RuleRunner(), annotator="rules")


@pytest.fixture(scope="module")
def talks_task() -> EarlierTask:
    """The talks task: 40 annotated texts, the first 10 held out."""
    annotations = _annotated(tk.TALKS, 40)
    return EarlierTask(version="m/1", annotations=annotations, heldout_ids=annotations.ids[:10])


# ---------------------------------------------------------------------------------------------
# replay sampling
# ---------------------------------------------------------------------------------------------


def test_replay_pool_is_capped_seeded_deterministic_and_never_replays_held_out_texts(talks_task):
    training = TrainingSettings(replay_cap=12, seed=0)
    first, counts = replay_examples([talks_task], training)
    again, _ = replay_examples([talks_task], training)
    assert len(first) == 12 and counts == {tk.TALKS.hash: 12}
    assert first == again  # deterministic
    other_seed, _ = replay_examples([talks_task], training.model_copy(update={"seed": 1}))
    assert other_seed != first
    held = {t for i, t in zip(talks_task.annotations.ids, talks_task.annotations.texts) if i in talks_task.heldout_ids}
    everything, _ = replay_examples([talks_task], training.model_copy(update={"replay_cap": 10_000}))
    assert everything and not {e.text for e in everything} & held  # held-out texts never replay
    assert {e.text for e in everything} == set(talks_task.annotations.texts) - held
    assert replay_examples([talks_task], TrainingSettings(replay=False)) == ([], {})
    assert replay_examples([], training) == ([], {})


def test_each_epoch_draws_fresh_replay_windows_within_the_token_budget():
    import random

    from falconer_core.metamodel.prompt import Window

    pool = [Window(item=k, input_ids=[0] * (5 + k % 7), text_offset=0, token_start=0, token_end=1) for k in range(60)]
    rng = random.Random(0)
    draws = [replay_draw(pool, 100, rng) for _ in range(6)]
    for draw in draws:
        assert 0 < sum(len(w.input_ids) for w in draw) <= 100
        assert len({w.item for w in draw}) == len(draw)  # no window twice in one epoch
    assert len({tuple(w.item for w in d) for d in draws}) == 6  # a fresh draw each epoch
    assert len({w.item for d in draws for w in d}) > 2 * max(len(d) for d in draws)  # more of the pool rehearsed
    assert replay_draw(pool, 0, rng) == [] and replay_draw([], 100, rng) == []


def test_replay_trains_within_its_share_of_each_epoch(talks_task, tiny_encoder_path):
    new = flatten(step_examples(_annotated(SPEAKERS, 24, prefix="s")))
    pool, _ = replay_examples([talks_task], TrainingSettings())
    settings = TrainingSettings(progress=False, epochs=3, replay_share=0.25, min_dev_examples=1000, seed=0)
    model = Metamodel.from_base(str(tiny_encoder_path), seed=0)
    new_tokens = sum(len(w.input_ids) for w in encode_examples(model.encoder, new))
    shortest = min(len(w.input_ids) for w in encode_examples(model.encoder, pool))
    summary = train(model, new, settings, pool)
    assert summary.n_train == len(new) and summary.n_replay == len(pool) and summary.epochs_run == 3
    assert 0 < summary.replayed_windows <= 3 * (0.25 * new_tokens // shortest)  # its share each epoch, no more
    alone = train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, settings)
    assert alone.n_replay == 0 and alone.replayed_windows == 0


def test_a_replaying_fine_tune_stops_on_the_new_task_but_keeps_the_epoch_best_on_all(
    talks_task, tiny_encoder_path, monkeypatch
):
    """Early stopping watches the new task's part of dev (the earlier tasks' scores creep up as
    they are rehearsed, and stopping on them doubled the epochs); the epoch kept is the best on
    the whole dev, and a replaying re-tune steps at `replay_lr_scale` of the rate."""
    import falconer_core.training.loop as loop

    new = flatten(step_examples(_annotated(SPEAKERS, 40, prefix="s")))
    pool, _ = replay_examples([talks_task], TrainingSettings())
    pooled = {id(e) for e in pool}
    calls = {"whole": 0, "new": 0, "new_rises": False}

    def scored(model, dev):
        if any(id(e) in pooled for e in dev):  # the whole dev: better every epoch
            calls["whole"] += 1
            return 0.1 * calls["whole"]
        calls["new"] += 1  # the new task alone: flat from the first epoch, unless told to rise
        return 0.1 * calls["new"] if calls["new_rises"] else 0.5
    monkeypatch.setattr(loop, "dev_score", scored)
    rates = []
    real_fit = loop.fit
    monkeypatch.setattr(loop, "fit", lambda *a, **k: rates.append(a[4].learning_rate) or real_fit(*a, **k))
    settings = TrainingSettings(progress=False, epochs=8, min_epochs=1, patience=2, dev_smoothing=1, dev_fraction=0.25, min_dev_examples=5,
                                calibrate_threshold=False, replay_lr_scale=0.5, replay_max_cost=10, seed=0)

    replayed = train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, settings, pool)
    assert replayed.epochs_run == 3  # flat new-task score: stopped after `patience` epochs
    assert replayed.best_epoch == 3  # the epoch kept is the best on the whole dev
    alone = train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, settings)
    assert alone.epochs_run == 3  # without replay the (flat) whole dev is watched, as before
    calls["new_rises"] = True  # a watched score that rises every epoch: no early stop
    assert train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, settings).epochs_run == 8
    assert rates == [settings.learning_rate * 0.5, settings.learning_rate, settings.learning_rate]


def test_replay_caps_the_epochs_so_a_retune_costs_at_most_replay_max_cost_of_one_without(talks_task, tiny_encoder_path):
    from falconer_core.training.loop import epoch_budget, replay_epoch_cap

    settings = TrainingSettings(replay_share=0.4, replay_max_cost=1.5, min_steps=200, min_epochs=4, replay_distill=0)
    # 29 steps an epoch alone: at least 7 epochs (200 steps); 1.4x an epoch with replay: 7 fit in 1.5 x 7
    assert epoch_budget(settings, 29)[1] == 7 and replay_epoch_cap(settings, 29) == 7
    assert replay_epoch_cap(settings, 100) == 4  # alone: its 4 minimum epochs; 4 x 1.4 <= 1.5 x 4 < 5 x 1.4
    assert replay_epoch_cap(settings.model_copy(update={"replay_max_cost": 3.0}), 100) == 8
    distilling = settings.model_copy(update={"replay_distill": 1.0})  # + the parent's forward over the share
    assert replay_epoch_cap(distilling, 29) == 6  # 6 x (1 + 0.4 x 4/3) <= 1.5 x 7 < 7 x 1.53
    for steps in (1, 7, 29, 50, 100, 400):
        for each in (settings, distilling):
            cap = replay_epoch_cap(each, steps)
            taught = each.replay_share / 3 if each.replay_distill else 0
            assert cap * (1 + each.replay_share + taught) <= each.replay_max_cost * epoch_budget(each, steps)[1] + 1e-9

    new = flatten(step_examples(_annotated(SPEAKERS, 24, prefix="s")))
    pool, _ = replay_examples([talks_task], TrainingSettings())
    run = TrainingSettings(progress=False, epochs=6, min_epochs=6, min_dev_examples=1000, seed=0, replay_max_cost=1.2,
                           replay_distill=0)
    summary = train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, run, pool)
    assert summary.epochs_run == 5  # int(1.2 x 6 / 1.4): the cap, not the 6 asked for
    assert train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, run).epochs_run == 6  # alone: uncapped


def test_blending_steps_from_the_child_toward_the_parent_while_the_new_task_allows():
    from falconer_core.training.blend import blend_with_parent, state_of

    def module(value: float) -> torch.nn.Module:
        layer = torch.nn.Linear(2, 2)
        torch.nn.init.constant_(layer.weight, value)
        torch.nn.init.constant_(layer.bias, value)
        layer.register_buffer("steps", torch.tensor([7 if value else 3]))  # integer: never blended
        return layer

    parent = state_of([module(0.0)])
    child = module(1.0)
    weight = lambda: float(child.weight.detach().mean())  # noqa: E731  the score: the child's share in the weights
    shares = (0.5, 0.9, 0.7, 0.6, 0.8)  # tried from the child's end, whatever the order given

    kept = blend_with_parent([child], parent, weight, shares, tolerance=0.25)
    assert kept == {"share": 0.8, "scores": [[1.0, 1.0], [0.9, 0.9], [0.8, 0.8], [0.7, 0.7]]}  # 0.7 stopped it
    assert torch.allclose(child.weight, torch.full((2, 2), 0.8)) and int(child.steps) == 7

    child = module(1.0)
    kept = blend_with_parent([child], parent, weight, shares, tolerance=0.0)  # no blend keeps all of it
    assert kept == {"share": 1.0, "scores": [[1.0, 1.0], [0.9, 0.9]]}
    assert torch.allclose(child.weight, torch.ones(2, 2))  # the re-tuned weights, restored

    child = module(1.0)
    lucky = iter([1.0, 0.5, 1.0, 1.0, 1.0, 1.0])  # 0.9 falls short; a lucky score further on must not count
    kept = blend_with_parent([child], parent, lambda: next(lucky), shares, tolerance=0.1)
    assert kept["share"] == 1.0 and torch.allclose(child.weight, torch.ones(2, 2))


def test_a_replaying_fine_tune_ends_blended_with_its_parent_and_one_without_replay_does_not(
    talks_task, tiny_encoder_path, monkeypatch
):
    import falconer_core.training.loop as loop

    new = flatten(step_examples(_annotated(SPEAKERS, 40, prefix="s")))
    pool, _ = replay_examples([talks_task], TrainingSettings())
    monkeypatch.setattr(loop, "dev_score", lambda model, dev: 0.5)  # flat: the first blend tried is kept
    settings = TrainingSettings(progress=False, epochs=2, dev_fraction=0.25, min_dev_examples=5,
                                calibrate_threshold=False, seed=0, replay_blend=(0.5,))
    parent = Metamodel.from_base(str(tiny_encoder_path), seed=0)
    before = {k: v.clone() for k, v in parent.model.state_dict().items()}

    retuned = Metamodel.from_base(str(tiny_encoder_path), seed=0)
    unblended = train(retuned, new, settings.model_copy(update={"replay_blend": ()}), pool)
    blended = Metamodel.from_base(str(tiny_encoder_path), seed=0)
    summary = train(blended, new, settings, pool)
    assert unblended.blend is None and summary.blend == {"share": 0.5, "scores": [[1.0, 0.5], [0.5, 0.5]]}
    after, trained = blended.model.state_dict(), retuned.model.state_dict()
    moved = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], trained[k])]
    assert moved  # training changed the weights, and the blend sits halfway
    assert all(torch.allclose(after[k], 0.5 * before[k] + 0.5 * trained[k], atol=1e-6) for k in moved)
    alone = train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, settings)
    assert alone.blend is None  # nothing to keep from a parent without replay


def test_distillation_loss_is_the_kl_from_the_parents_probabilities_on_replayed_windows_only():
    from falconer_core.metamodel.batching import collate
    from falconer_core.metamodel.prompt import IGNORE, Window
    from falconer_core.training.distill import distill_loss

    replayed = Window(0, [5, 6, 7], 0, 0, 3, labels=[IGNORE, 1, 0], teacher=torch.tensor([[0.2, 0.7, 0.1]] * 3))
    new = Window(1, [5, 6, 7, 8], 0, 0, 4, labels=[0, 0, 2, 0])
    batch = collate([new, replayed], pad_id=0, device="cpu")
    assert batch["teacher_mask"].tolist() == [[False] * 4, [False, True, True, False]]  # its supervised positions
    agreeing = torch.log(torch.tensor([0.2, 0.7, 0.1])).expand(2, 4, 3)
    assert float(distill_loss(agreeing, batch)) == pytest.approx(0.0, abs=1e-6)
    sure = torch.tensor([0.0, 10.0, 0.0]).expand(2, 4, 3)  # confident B where the parent hedged
    expected = sum(p * (torch.log(torch.tensor(p)) - torch.log_softmax(torch.tensor([0.0, 10.0, 0.0]), 0)[k])
                   for k, p in enumerate([0.2, 0.7, 0.1]))
    assert float(distill_loss(sure, batch)) == pytest.approx(float(expected), rel=1e-5)
    assert distill_loss(sure, collate([new], pad_id=0, device="cpu")) is None and "teacher" not in collate([new], 0, "cpu")


def test_a_distilling_retune_teaches_each_replayed_window_the_parents_answers_once(talks_task, tiny_encoder_path, monkeypatch):
    import falconer_core.training.loop as loop
    from falconer_core.metamodel.batching import collate
    from falconer_core.training.distill import distill_loss

    new = flatten(step_examples(_annotated(SPEAKERS, 24, prefix="s")))
    pool, _ = replay_examples([talks_task], TrainingSettings())
    settings = TrainingSettings(progress=False, epochs=3, min_dev_examples=1000, seed=0, replay_distill=1.0)
    taught = []
    real_teach = loop.teach

    def spy(model, windows, batch_size):
        parent = {k: v.clone() for k, v in model.model.state_dict().items()}
        count = real_teach(model, windows, batch_size)
        taught.append((parent, windows, count))
        return count
    monkeypatch.setattr(loop, "teach", spy)
    model = Metamodel.from_base(str(tiny_encoder_path), seed=0)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    summary = train(model, new, settings, pool)
    (parent, windows, count), = taught
    assert all(torch.equal(parent[k], before[k]) for k in before)  # taught by the parent, before any step
    assert 0 < summary.distilled_windows == count == len({id(w) for w in windows}) <= summary.replayed_windows
    assert all(w.teacher is not None and w.teacher.shape == (len(w.input_ids), 3) for w in windows)
    assert all(torch.allclose(w.teacher.sum(-1), torch.ones(len(w.input_ids))) for w in windows)
    plain_model = Metamodel.from_base(str(tiny_encoder_path), seed=0)
    plain = train(plain_model, new, settings.model_copy(update={"replay_distill": 0.0}), pool)
    assert plain.distilled_windows == 0 and len(taught) == 1
    assert plain.train_loss != summary.train_loss  # the KL term is in the loss

    def drift(child) -> float:  # how far the child's answers moved from the parent's on the replayed windows
        batch = collate(windows, child.tokenizer.pad_token_id, child.device)
        with torch.no_grad():
            return float(distill_loss(child.forward(batch).logits, batch))
    assert drift(model) < drift(plain_model)  # distilled: closer to what the parent said
    alone = train(Metamodel.from_base(str(tiny_encoder_path), seed=0), new, settings)
    assert alone.distilled_windows == 0 and len(taught) == 1  # no parent to distil without replay


def test_a_retune_from_a_parent_trains_on_replayed_examples_and_not_with_replay_off(
    talks_task, tiny_encoder_path, tmp_path, monkeypatch
):
    seen: list[list] = []

    def spy(self, examples, settings=None, **kwargs):
        seen.append(list(examples) + list(kwargs.get("replay", ())))
        return TrainingSummary(n_train=len(seen[-1]), n_dev=0)

    monkeypatch.setattr(Metamodel, "fine_tune", spy)
    new = _annotated(SPEAKERS, 20, prefix="s")
    start = ModelSource.base(str(tiny_encoder_path))
    holdout = HoldoutSettings(fraction=0.2, min_heldout=2)
    training = TrainingSettings(progress=False, unlabeled=False, replay_cap=8)

    replayed = fine_tune_checkpoint(new, start, training, holdout, tmp_path / "a", earlier=[talks_task])
    alone = fine_tune_checkpoint(new, start, training.model_copy(update={"replay": False}), holdout, tmp_path / "b",
                                 earlier=[talks_task])
    talks_texts = set(talks_task.annotations.texts)
    assert replayed.replayed == {tk.TALKS.hash: 8} and alone.replayed == {}
    assert sum(e.text in talks_texts for e in seen[0]) == 8
    assert len(seen[0]) == len(seen[1]) + 8 and replayed.n_examples == alone.n_examples + 8
    assert not any(e.text in talks_texts for e in seen[1])
    # the content key names what replayed: with replay off, the earlier tasks do not change it
    assert replayed.key != fine_tune_key(new.hash, start, training, holdout)
    off = training.model_copy(update={"replay": False})
    assert alone.key == fine_tune_key(new.hash, start, off, holdout)


def test_a_retune_of_the_same_task_replays_its_earlier_set_but_never_the_new_held_out_texts(
    talks_task, tiny_encoder_path, tmp_path, monkeypatch
):
    """A drift re-tune: the same plan, a corpus overlapping the earlier one. The earlier set
    replays (the child keeps what the champion knew) except the texts the new version is scored on."""
    seen: list[list] = []

    def spy(self, examples, settings=None, **kwargs):
        seen.append(list(kwargs.get("replay", ())))
        return TrainingSummary(n_train=len(examples), n_dev=0)

    monkeypatch.setattr(Metamodel, "fine_tune", spy)
    again = _annotated(tk.TALKS, 40)  # the same texts, annotated again
    training = TrainingSettings(progress=False, unlabeled=False)
    done = fine_tune_checkpoint(again, ModelSource.base(str(tiny_encoder_path)), training,
                                HoldoutSettings(fraction=0.25, min_heldout=2), tmp_path, earlier=[talks_task])
    held = {again.text_of()[i] for i in done.heldout_ids}
    replayed = {e.text for e in seen[0]}
    assert held and replayed and not replayed & held
    earlier_train = {talks_task.annotations.text_of()[i] for i in talks_task.train_ids}
    assert replayed == earlier_train - held


# ---------------------------------------------------------------------------------------------
# the gate over every task, and one model serving many
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path, tmp_path_factory) -> Settings:
    from mlflow import MlflowClient

    template = tmp_path_factory.getbasetemp() / "continual-mlflow.db"
    if not template.exists():
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(template, home / "mlflow.db")
    return Settings(home=home)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_encoder_path):
    return Metamodel.from_base(str(tiny_encoder_path)).save(tmp_path_factory.mktemp("ckpt") / "metamodel")


def _register(settings, folder, annotations, heldout, *, key, parent=None, ancestors=()):
    evaluation = score_texts(tk.RuleRunner(), annotations, heldout)
    checkpoint = Checkpoint(
        path=str(folder), key=key, base_model="tiny-bert", parent=parent, plan_hash=annotations.plan.hash,
        annotation_set_hash=annotations.hash, annotator="rules", n_annotations=annotations.size,
        train_ids=[i for i in annotations.ids if i not in heldout], heldout_ids=list(heldout), n_examples=10,
        training={}, summary={},
    )
    return register_checkpoint(settings, checkpoint, annotations, evaluation, model_name="m", corpus_id="c",
                               gate={"mean_f1": 0.5}, flow_run_id=None, ancestors=ancestors)


class _Mute(tk.RuleRunner):
    """A deliberately damaged model: it never finds a speaker."""

    def get_span(self, texts, instruction):
        return [[] for _ in texts]


def test_a_child_that_regresses_on_an_ancestor_task_is_not_promoted_for_it_and_lineage_says_why(
    settings, folder, talks_task, monkeypatch
):
    from typer.testing import CliRunner

    from falconer_cli.main import app

    talks = talks_task.annotations
    first = _register(settings, folder, talks, talks_task.heldout_ids, key="k1")
    assert first.champion and first.version == "m/1"
    registry = Registry.from_settings(settings)
    # the task and its held-out texts are kept with the version, for its children
    (kept,) = earlier_tasks(registry, "m/1", exclude_plans=[SPEAKERS.hash]).tasks
    assert kept.annotations.hash == talks.hash and kept.heldout_ids == talks_task.heldout_ids

    speakers = _annotated(SPEAKERS, 30, prefix="s")
    champion_on_talks = score_texts(tk.RuleRunner(), talks, talks_task.heldout_ids)
    damaged = score_texts(_Mute(), talks, talks_task.heldout_ids)  # the child forgot the speakers of talks
    child = _register(
        settings, folder, speakers, speakers.ids[:10], key="k2", parent="m/1",
        ancestors=[AncestorScores(plan_hash=talks.plan.hash, evaluation=damaged, incumbent=champion_on_talks,
                                  incumbent_version="m/1")],
    )
    assert child.champion  # of its own task
    assert child.ancestors == {talks.plan.hash: False}
    assert "worse beyond the noise" in child.ancestor_reasons[talks.plan.hash][-1]
    assert registry.champion_of("m", talks.plan.hash).version == 1
    assert registry.champion_of("m", SPEAKERS.hash).version == 2
    record = json.loads(registry.lookup.tags("m/2")[T.PROMOTION_FOR_PREFIX + talks.plan.hash])
    assert not record["champion"] and record["incumbent"] == "m/1"
    assert record["score"]["mean_f1"] < record["incumbent_score"]["mean_f1"]

    shown = render_lineage(registry.lineage("m/2"))
    line = next(x for x in shown.splitlines() if f"task {talks.plan.hash} (ancestor task)" in x)
    assert "not promoted" in line and "worse beyond the noise" in line and "vs m/1" in line
    monkeypatch.setenv("FALCONER_HOME", str(settings.home))
    result = CliRunner().invoke(app, ["lineage", "m/2"])
    assert result.exit_code == 0, result.output
    assert "ancestor task" in result.output and "worse beyond the noise" in result.output


def test_a_version_champion_of_two_tasks_carries_both_aliases_and_champion_points_at_it(settings, folder, talks_task):
    talks = talks_task.annotations
    _register(settings, folder, talks, talks_task.heldout_ids, key="k1")
    registry = Registry.from_settings(settings)
    assert registry.resolve("m@champion").version == 1
    speakers = _annotated(SPEAKERS, 30, prefix="s")
    as_good = score_texts(tk.RuleRunner(), talks, talks_task.heldout_ids)
    child = _register(
        settings, folder, speakers, speakers.ids[:10], key="k2", parent="m/1",
        ancestors=[AncestorScores(plan_hash=talks.plan.hash, evaluation=as_good, incumbent=as_good,
                                  incumbent_version="m/1")],
    )
    assert child.champion and child.ancestors == {talks.plan.hash: True}
    version = registry.resolve("m/2")
    assert {champion_alias(talks.plan.hash), champion_alias(SPEAKERS.hash), "champion"} <= set(version.aliases)
    assert registry.resolve("m@champion").version == 2
    # execute NAME with a plan runs that task's champion; a pinned ref stays pinned
    assert registry.for_task("m", talks.plan.hash).version == 2
    assert registry.for_task("m/1", talks.plan.hash) == "m/1"
    assert registry.for_task("m", "no-such-task") == "m"
