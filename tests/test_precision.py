"""Precision: what `auto` picks from the machine's capabilities (mocked, so the suite passes on
any CPU), what a named precision is refused for, the quality gate's decision on faster
precisions, and the verdicts it leaves as tags on a real MLflow sqlite registry."""

from __future__ import annotations

import json
import re

import pytest

from falconer_core.annotators.annotation import annotate_sample
from falconer_core.errors import ConfigError
from falconer_core.evaluation.comparison import Comparison
from falconer_core.evaluation.precision_gate import (
    MAX_COST,
    decide,
    gate_metamodel,
    gate_precisions,
    offered_precisions,
)
from falconer_core.execution import ExecutionSettings
from falconer_core.execution.shards import execution_run_id
from falconer_core.metamodel import precision as P
from falconer_core.metamodel.precision import Capabilities, resolve_precision
from falconer_core.registry import tags as T
from falconer_core.registry.precision_gate import (
    PRECISION_GATE_TAG,
    annotated_ids,
    gate_verdicts,
    precision_for_version,
    record_precision_gate,
    recorded_gate,
)
from falconer_core.types import per_text_instructions
from tests import talks as tk
from tests.test_registry import PLAN, checkpoint, log, migrated_db, new_registry  # noqa: F401 (fixtures)

AMX = Capabilities(cuda=False, cpu_capability="AVX512", cpu_flags=frozenset({"amx_bf16", "avx512_bf16"}), cpu_model="Xeon")
AVX512_BF16 = Capabilities(cuda=False, cpu_capability="AVX512", cpu_flags=frozenset({"avx512_bf16"}), cpu_model="EPYC")
AVX2 = Capabilities(cuda=False, cpu_capability="AVX2", cpu_model="Old Core")
CUDA = Capabilities(cuda=True, cpu_capability="AVX2", cpu_model="Old Core")


# ---------------------------------------------------------------------------------- auto
@pytest.mark.parametrize(("caps", "device", "expected"), [
    (AMX, "cpu", "bf16"), (AVX512_BF16, "cpu", "bf16"), (AVX2, "cpu", "fp32"), (CUDA, "cuda", "bf16"),
    (CUDA, None, "bf16"), (AVX2, None, "fp32"), (CUDA, "cpu", "fp32"),  # a GPU box's AVX2 CPU has no bf16 units
])
def test_auto_is_bf16_where_there_are_bf16_units_and_fp32_elsewhere(caps, device, expected):
    assert resolve_precision("auto", device, capabilities=caps) == expected


def test_a_named_precision_is_checked_against_the_machine():
    with pytest.raises(ConfigError, match=r"bf16 needs a CUDA device or a CPU with bf16 units.*Old Core.*AVX2"):
        resolve_precision("bf16", "cpu", capabilities=AVX2)
    assert resolve_precision("bf16", "cpu", capabilities=AVX512_BF16) == "bf16"
    assert resolve_precision("bf16", "cpu", capabilities=AMX) == "bf16"
    assert resolve_precision("bf16", None, capabilities=CUDA) == "bf16"
    assert resolve_precision("int8", None, capabilities=CUDA) == "int8"  # int8 goes to the CPU
    with pytest.raises(ConfigError, match="int8 runs on CPU only"):
        resolve_precision("int8", "cuda", capabilities=CUDA)
    with pytest.raises(ConfigError, match="unknown precision 'fp16'; choose one of auto, fp32, int8, bf16"):
        resolve_precision("fp16", "cpu", capabilities=AMX)
    assert [resolve_precision(p, "cpu", capabilities=AVX2) for p in ("fp32", "int8")] == ["fp32", "int8"]


def test_auto_keeps_to_the_precisions_the_gate_passed():
    assert resolve_precision("auto", "cpu", gated={"bf16": True, "int8": False}, capabilities=AMX) == "bf16"
    assert resolve_precision("auto", "cpu", gated={"bf16": False, "int8": True}, capabilities=AMX) == "fp32"
    assert resolve_precision("auto", "cpu", gated={"int8": True}, capabilities=AMX) == "fp32"  # bf16 never gated
    assert resolve_precision("auto", "cpu", gated={}, capabilities=AMX) == "bf16"  # an ungated (older) version
    assert resolve_precision("auto", "cpu", gated={"bf16": True}, capabilities=AVX2) == "fp32"  # gated elsewhere
    assert resolve_precision("bf16", "cpu", gated={"bf16": False}, capabilities=AMX) == "bf16"  # named: as asked


def test_capabilities_come_from_cpuinfo_flags(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel Xeon Max\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n\n"
                       "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
    assert P.read_cpuinfo(cpuinfo) == ({"fpu", "avx2", "avx512f", "amx_bf16", "amx_tile"}, "Intel Xeon Max")
    assert P.read_cpuinfo(tmp_path / "missing") == (set(), "unknown CPU")
    monkeypatch.setattr(P, "read_cpuinfo", lambda: ({"avx2", "amx_bf16"}, "Intel Xeon Max"))
    P.detect_capabilities.cache_clear()
    try:
        found = P.detect_capabilities()
        assert found.cpu_flags == {"amx_bf16"} and found.cpu_bf16_units == ["AMX"] and found.fastest("cpu") == "bf16"
        monkeypatch.setattr(P, "read_cpuinfo", lambda: ({"avx2", "fma"}, "Old Core"))
        P.detect_capabilities.cache_clear()
        assert P.detect_capabilities().fastest("cpu") == "fp32"
    finally:
        P.detect_capabilities.cache_clear()


def test_auto_is_the_default_and_is_resolved_before_run_ids(monkeypatch):
    assert ExecutionSettings().precision == "auto"
    assert ExecutionSettings(precision="bf16").precision == "bf16"
    same = execution_run_id("m/1", tk.TALKS, "corpus", 20)
    assert execution_run_id("m/1", tk.TALKS, "corpus", 20, "fp32") == same  # fp32 runs keep their ids
    assert execution_run_id("m/1", tk.TALKS, "corpus", 20, "bf16") != same
    with pytest.raises(ConfigError, match="'auto' must be resolved"):
        execution_run_id("m/1", tk.TALKS, "corpus", 20, "auto")
    monkeypatch.setattr(P, "detect_capabilities", lambda: AVX2)
    assert precision_for_version("auto", None) == "fp32"
    monkeypatch.setattr(P, "detect_capabilities", lambda: AVX512_BF16)
    assert precision_for_version("auto", None) == "bf16"


def test_the_metamodel_runs_auto_as_the_machine_allows(tiny_encoder_path, monkeypatch):
    from falconer_core.metamodel import Metamodel

    monkeypatch.setattr(P, "detect_capabilities", lambda: AVX2)
    with pytest.raises(ConfigError, match="bf16 needs a CUDA device or a CPU with bf16 units"):
        Metamodel.from_base(str(tiny_encoder_path), precision="bf16", device="cpu")
    assert Metamodel.from_base(str(tiny_encoder_path), precision="auto", device="cpu").precision == "fp32"
    monkeypatch.setattr(P, "detect_capabilities", lambda: AVX512_BF16)
    bf16 = Metamodel.from_base(str(tiny_encoder_path), precision="auto", device="cpu")
    assert bf16.precision == "bf16"  # autocast on the CPU (emulated where the real CPU lacks the units)
    spans = bf16.get_span(tk.TEXTS, "Extract the speaker's name", progress=False)
    assert len(spans) == len(tk.TEXTS) and all(0 <= s.start <= s.end <= len(t) for t, ss in zip(tk.TEXTS, spans) for s in ss)


def test_offered_precisions_follow_the_bf16_units():
    assert offered_precisions(AMX) == ["bf16", "int8"]
    assert offered_precisions(CUDA) == ["bf16", "int8"]
    assert offered_precisions(AVX2) == ["int8"]


# ---------------------------------------------------------------------------------- the gate
def _talks(n: int) -> tuple[list[str], list[str]]:
    ids = [f"t{i}" for i in range(n)]
    texts = [f"Speaker: Ada Byron{i}. Ada Byron{i} is a mathematician who talks about science." if i % 3
             else f"Speaker: Tom Hardy{i}. A talk about music." for i in range(n)]
    return ids, texts


class _Damaged(tk.RuleRunner):
    """The rules, except that the speaker is missed on every `every`-th text from the second
    (a talk about science, so its speaker is asked for): a precision that moves some decisions."""

    def __init__(self, every: int) -> None:
        self.every = every

    def get_span(self, texts, instruction):
        out = super().get_span(texts, instruction)
        asks = per_text_instructions(texts, instruction)
        return [[] if ask == "Extract the speaker's name" and int(re.search(r"(\d+)\.", t).group(1)) % self.every == 1 % self.every
                else spans for t, ask, spans in zip(texts, asks, out)]


def test_the_gate_refuses_a_precision_that_costs_too_much_and_passes_one_that_does_not():
    ids, texts = _talks(300)
    annotations = annotate_sample(tk.TALKS, ids, texts, tk.RuleRunner(), annotator="rules")
    gate = gate_precisions(tk.RuleRunner(), {"bf16": tk.RuleRunner(), "int8": _Damaged(10), "slight": _Damaged(1000)},
                           annotations, machine="test")
    by = {v.precision: v for v in gate.verdicts}
    assert gate.n_texts == 300 and gate.reference == "rules" and gate.max_cost == MAX_COST
    assert by["bf16"].passed and by["bf16"].delta == 0 and (by["bf16"].lo, by["bf16"].hi) == (0, 0)
    damaged = by["int8"]
    assert not damaged.passed and damaged.delta < -MAX_COST and damaged.hi < 0 and "more than" in damaged.reason
    assert damaged.delta == pytest.approx(damaged.f1 - damaged.fp32_f1, abs=1e-6) and damaged.fp32_f1 == 1.0
    slight = by["slight"]  # one text of 300 loses its speaker: a real but tiny cost
    assert slight.passed and -MAX_COST < slight.delta < 0
    assert gate.passed() == {"fp32": True, "bf16": True, "int8": False, "slight": True}


def test_a_precision_whose_interval_lies_wholly_below_the_margin_is_refused():
    def comparison(difference, lo, hi):
        return Comparison(incumbent="fp32", n_texts=50, candidate_value=0.8 + difference, incumbent_value=0.8,
                          difference=difference, lo=lo, hi=hi)

    assert decide("bf16", comparison(-0.004, -0.02, 0.01), 0.01).passed
    assert not decide("bf16", comparison(-0.006, -0.02, 0.01), 0.01).passed
    below = decide("bf16", comparison(-0.004, -0.009, -0.006), 0.01)
    assert not below.passed and "wholly below" in below.reason


def test_the_gate_on_a_real_checkpoint_and_its_tags_in_the_registry(tmp_path, migrated_db, checkpoint, monkeypatch):  # noqa: F811
    from falconer_core.metamodel import Metamodel

    folder, _ = checkpoint
    registry = new_registry(tmp_path / "state", migrated_db)
    annotations = tmp_path / "annotations.jsonl"
    annotations.write_text("".join(json.dumps({"text_id": i, "step": "person"}) + "\n" for i in ("a", "b", "c")))
    gated, older = log(registry, folder, annotations_path=annotations), log(registry, folder)
    assert annotated_ids(registry, gated) == (["a", "b", "c"], "btc-demo")

    texts = {"a": "Ada met Alan in Paris.", "b": "Grace spoke in Rome about science.", "c": "Nobody came."}
    real = gate_metamodel(Metamodel.load(folder), texts=texts, plan=PLAN, precisions=["int8"])
    (int8,) = real.verdicts
    assert real.reference == "fp32 outputs" and real.n_texts == 3 and int8.fp32_f1 == 1.0
    assert int8.passed == (int8.delta >= -MAX_COST and int8.hi >= -MAX_COST)

    ids, talks = _talks(60)
    reference = annotate_sample(tk.TALKS, ids, talks, tk.RuleRunner(), annotator="rules")
    decided = gate_precisions(tk.RuleRunner(), {"bf16": _Damaged(5), "int8": tk.RuleRunner()}, reference, machine="test")
    tags = record_precision_gate(registry, gated, decided)
    stored = registry.client.get_model_version(gated.name, str(gated.version)).tags
    assert {k: stored[k] for k in tags} == tags
    assert stored["falconer.precision.bf16"] == "refused" and stored["falconer.precision.int8"] == "ok"
    bf16 = decided.verdicts[0]
    assert stored["falconer.precision.bf16.delta"] == f"{bf16.delta:+.4f}" and bf16.delta < -MAX_COST
    assert stored["falconer.precision.bf16.interval"] == f"[{bf16.lo:+.4f}, {bf16.hi:+.4f}]"
    assert stored["falconer.precision.int8.delta"] == "+0.0000"
    assert gate_verdicts(stored) == {"bf16": False, "int8": True}
    assert recorded_gate(registry, gated) == decided and PRECISION_GATE_TAG in stored
    assert recorded_gate(registry, older) is None and T.CORPUS_ID in stored

    monkeypatch.setattr(P, "detect_capabilities", lambda: AMX)
    assert precision_for_version("auto", str(gated), registry) == "fp32"  # bf16 refused by the gate
    assert precision_for_version("auto", str(older), registry) == "bf16"  # no verdicts: the machine decides
    assert precision_for_version("bf16", str(gated), registry) == "bf16"  # named: as asked
    record_precision_gate(registry, gated, decided.model_copy(update={"verdicts": [
        v.model_copy(update={"passed": True}) for v in decided.verdicts]}))
    assert precision_for_version("auto", str(gated), registry) == "bf16"


# ---------------------------------------------------------------------------------- the command
def test_the_precision_command_prints_the_table_and_tags_the_version(tmp_path, migrated_db, checkpoint, monkeypatch):  # noqa: F811
    import pandas as pd
    from typer.testing import CliRunner

    from falconer_cli.main import app
    from falconer_core.store import Store

    folder, _ = checkpoint
    home = tmp_path / "home"
    monkeypatch.setenv("FALCONER_HOME", str(home))
    registry = new_registry(home, migrated_db)  # the embedded default: HOME/mlflow.db, HOME/mlartifacts
    texts = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": [
        "Ada met Alan in Paris.", "Grace spoke in Rome about science.", "Nobody came.", "Not annotated."]})
    with Store(home / "falconer.duckdb") as db:
        corpus_id = db.upsert_corpus(texts, name="tweets")
    annotations = tmp_path / "annotations.jsonl"
    annotations.write_text("".join(json.dumps({"text_id": i, "step": "person"}) + "\n" for i in ("a", "b", "c")))
    version = log(registry, folder, annotations_path=annotations, corpus_id=corpus_id)

    result = CliRunner().invoke(app, ["precision", str(version), "--only", "int8"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "each precision against fp32's outputs on 3 texts" in result.stdout
    assert "fp32" in result.stdout and "reference" in result.stdout and "int8" in result.stdout
    stored = registry.client.get_model_version(version.name, str(version.version)).tags
    assert stored["falconer.precision.int8"] in ("ok", "refused") and "bf16" not in gate_verdicts(stored)
    assert recorded_gate(registry, version).n_texts == 3
    assert "int8: " in result.stdout  # the verdict's reason

    missing = CliRunner().invoke(app, ["precision", str(log(registry, folder))])  # no annotations kept
    assert missing.exit_code == 2 and "no recorded annotations" in missing.stderr
    assert "precision" in CliRunner().invoke(app, ["--help"]).stdout


def test_bf16_inference_on_cpu_casts_the_weights_once_and_follows_every_change(tiny_encoder_path, monkeypatch):
    """The bf16 copy is made once per set of weights, answers like autocast over the fp32 weights,
    and is remade after a training step changed them (never stale)."""
    import torch

    from falconer_core.metamodel import Metamodel
    from falconer_core.types import LabelExample

    monkeypatch.setattr(P, "detect_capabilities", lambda: AVX512_BF16)
    model = Metamodel.from_base(str(tiny_encoder_path), precision="bf16", device="cpu", seed=0)
    first, again = model._inference_weights(), model._inference_weights()
    assert first[0] is again[0] and first[0] is not model.model  # cast once, reused
    assert {p.dtype for p in first[0].parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.model.parameters()} == {torch.float32}  # training keeps fp32 weights
    instruction = "Is this about science?"
    monkeypatch.setattr(Metamodel, "_inference_weights", lambda self: (self.model, self.shape_embedding))
    autocast_only = model.get_label(tk.TEXTS, instruction, progress=False)
    monkeypatch.undo()
    monkeypatch.setattr(P, "detect_capabilities", lambda: AVX512_BF16)
    assert [bool(r) for r in model.get_label(tk.TEXTS, instruction, progress=False)] == [bool(r) for r in autocast_only]
    model.fine_tune([LabelExample(t, instruction, i % 2 == 0) for i, t in enumerate(tk.TEXTS * 4)],
                    epochs=1, progress=False, unlabeled=False)
    after = model._inference_weights()
    assert after[0] is not first[0]  # the weights changed: a fresh copy
    fp32_weight = dict(model.model.named_parameters())["classifier.weight"]
    bf16_weight = dict(after[0].named_parameters())["classifier.weight"]
    assert torch.allclose(fp32_weight.to(torch.bfloat16).float(), bf16_weight.float())
