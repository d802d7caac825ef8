"""The metamodel's contracts: offsets, empty/long/unicode texts, windowing, save/load,
determinism, continual re-tuning, that fine-tuning actually learns, and inference precisions."""

import random

import numpy as np
import pytest
import torch

from falconer_core import ConfigError, LabelExample, ModelError, Span, SpanExample
from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.decoding import merge_word_probs, spans_from_word_probs
from falconer_core.metamodel.prompt import B, I, O, PromptFormat
from falconer_core.metamodel.source import ModelSource
from tests.conftest import make_tiny_encoder

TEXTS = [
    "John Smith met Mary Jones in Paris.",
    "Le café à Zürich ☕ coûte 4,50 €.",
    "東京で会いましょう — Ünïcödé test 🦓 zebra!",
    "tabs\tand\nnewlines  and   spaces",
]


@pytest.fixture(scope="module")
def tiny(tiny_encoder_path):
    return Metamodel.from_base(str(tiny_encoder_path))


def check_offsets(texts, results):
    for text, spans in zip(texts, results):
        for span in spans:
            assert 0 <= span.start < span.end <= len(text)
            assert text[span.start : span.end] == span.text
            assert 0.0 <= span.confidence <= 1.0


def test_spans_carry_exact_character_offsets_on_unicode_texts(tiny):
    results = tiny.get_span(TEXTS, "Extract the names.")
    assert len(results) == len(TEXTS)
    check_offsets(TEXTS, results)


def test_empty_and_whitespace_texts_get_empty_results(tiny):
    texts = ["", "   ", "\n\t", "real words here"]
    spans = tiny.get_span(texts, "Extract the names.")
    labels = tiny.get_label(texts, "Is this about travel?")
    assert spans[:3] == [[], [], []]
    assert [bool(r) for r in labels[:3]] == [False, False, False]
    assert all(0.5 <= r.confidence <= 1.0 for r in labels)


def test_per_text_instructions_and_their_errors(tiny):
    out = tiny.get_label(TEXTS[:2], ["Is this about people?", "Is this about money?"])
    assert len(out) == 2
    with pytest.raises(Exception, match="2 instructions for 3 texts"):
        tiny.get_span(TEXTS[:3], ["a", "b"])
    with pytest.raises(ConfigError, match="list of texts"):
        tiny.get_span("a single string", "Extract")
    with pytest.raises(ModelError, match="shorten the instruction"):
        tiny.get_span(["x"], "word " * 600)


def test_long_texts_are_windowed_and_every_token_is_covered(tiny):
    text = " ".join(f"w{i}" for i in range(900))
    encoded = tiny.encoder.encode_texts([text])[0]
    windows = tiny.encoder.windows(0, encoded, "span", "Extract the names.")
    assert len(encoded.ids) > 512 and len(windows) >= 3
    assert all(len(w.input_ids) <= 512 for w in windows)
    assert windows[0].token_start == 0 and windows[-1].token_end == len(encoded.ids)
    for prev, nxt in zip(windows, windows[1:]):
        assert nxt.token_start < prev.token_end  # overlap, no gap
    results = tiny.get_span([text], "Extract the names.")
    check_offsets([text], results)


def test_overlapping_windows_merge_each_word_from_its_most_central_window(tiny):
    text = " ".join(["alpha"] * 40)
    encoded = tiny.encoder.encode_texts([text])[0]
    tiny.encoder.max_length, saved = 40, tiny.encoder.max_length
    try:
        windows = tiny.encoder.windows(0, encoded, "span", "Find")
    finally:
        tiny.encoder.max_length = saved
    assert len(windows) > 1
    # window k says B for every word: the merged tag of a word tells which window won it
    probs = []
    for k, w in enumerate(windows):
        p = np.zeros((w.token_end - w.token_start, 3), dtype=np.float32)
        p[:, B if k % 2 == 0 else I] = 1.0
        probs.append(p)
    merged = merge_word_probs(encoded, windows, probs)
    # the last word is only in the last window; the first only in the first
    assert merged[0].argmax() == B
    assert merged[-1].argmax() == (B if (len(windows) - 1) % 2 == 0 else I)
    # a word in the middle of the first overlap belongs to the window it is more central in
    first, second = windows[0], windows[1]
    overlap = range(second.token_start, first.token_end)
    early, late = overlap[0], overlap[-1]
    assert merged[encoded.first_token_word[early]].argmax() == B
    assert merged[encoded.first_token_word[late]].argmax() == I


def test_bio_decoding_rules():
    text = "aa bb cc dd ee"
    from falconer_core.metamodel.prompt import EncodedText

    encoded = EncodedText(ids=[1, 2, 3, 4, 5], first_token_word=[0, 1, 2, 3, 4],
                          word_chars=[(0, 2), (3, 5), (6, 8), (9, 11), (12, 14)])
    tags = [B, I, O, I, B]  # a span, a stray I that opens one, then a new B
    probs = np.eye(3, dtype=np.float32)[tags]
    spans = spans_from_word_probs(text, encoded, probs)
    assert [(s.text, s.start, s.end) for s in spans] == [("aa bb", 0, 5), ("dd", 9, 11), ("ee", 12, 14)]


def test_save_load_round_trip(tiny, tmp_path):
    before = tiny.get_span(TEXTS, "Extract the names."), tiny.get_label(TEXTS, "Is it French?")
    tiny.save(tmp_path / "ckpt")
    loaded = Metamodel.load(tmp_path / "ckpt")
    assert loaded.config["prompt"] == PromptFormat().to_dict()
    assert loaded.config["label_scheme"]["tags"] == ["O", "B", "I"]
    after = loaded.get_span(TEXTS, "Extract the names."), loaded.get_label(TEXTS, "Is it French?")
    assert before == after
    with pytest.raises(ModelError, match="not a Falconer checkpoint"):
        Metamodel.load(tmp_path)


def test_a_bio_head_of_another_order_is_kept_and_reordered(tmp_path):
    folder = make_tiny_encoder(tmp_path / "cuckoo-like", id2label={0: "B", 1: "I", 2: "O"})
    from transformers import AutoModelForTokenClassification

    original = AutoModelForTokenClassification.from_pretrained(folder).classifier.weight.detach()
    model = Metamodel.from_base(str(folder))
    weight = model.model.classifier.weight.detach()
    assert torch.equal(weight[O], original[2]) and torch.equal(weight[B], original[0])
    assert torch.equal(weight[I], original[1])


def test_missing_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load base encoder"):
        Metamodel.from_base(str(tmp_path / "nope"))


def _toy_examples(n: int, seed: int):
    """A learnable task: which animal is named, and does the text name one at all?"""
    rng = random.Random(seed)
    animals, fillers = ["zebra", "otter", "falcon", "badger"], ["the", "old", "road", "was", "quiet", "today", "near", "town"]
    out = []
    for _ in range(n):
        words = rng.sample(fillers, 5)
        has = rng.random() < 0.5
        if has:
            words.insert(rng.randrange(6), rng.choice(animals))
        text = " ".join(words)
        spans = []
        for a in animals:
            if f" {a}" in f" {text}":
                start = text.index(a)
                spans.append(Span(a, start, start + len(a)))
        out.append(SpanExample(text, "Extract the animal.", spans))
        out.append(LabelExample(text, "Does the text name an animal?", has))
    return out


def _score(model, examples):
    from falconer_core.evaluation import label_metrics, word_f1

    spans = [e for e in examples if isinstance(e, SpanExample)]
    labels = [e for e in examples if isinstance(e, LabelExample)]
    texts = [e.text for e in spans]
    f1 = word_f1(model.get_span(texts, "Extract the animal."), [list(e.spans) for e in spans], texts)["f1"]
    acc = label_metrics(model.get_label([e.text for e in labels], labels[0].instruction), [e.label for e in labels])["accuracy"]
    return f1, acc


@pytest.fixture(scope="module")
def toy_trained():
    """The packaged MiniLM fine-tuned on the toy task, with its test set and its scores before."""
    model = Metamodel.from_base()
    train, test = _toy_examples(60, seed=1), _toy_examples(40, seed=2)
    before = _score(model, test)
    summary = model.fine_tune(train, epochs=12, learning_rate=3e-4, batch_size=8, min_dev_examples=10, progress=False)
    return model, test, before, summary


def test_fine_tune_learns_a_toy_task_from_chance(toy_trained, tmp_path):
    model, test, (f1_before, acc_before), summary = toy_trained
    f1_after, acc_after = _score(model, test)
    assert f1_before < 0.5 and acc_before < 0.75
    assert f1_after > 0.9 and acc_after > 0.9, (f1_after, acc_after, summary)
    assert summary.n_dev > 0 and summary.best_epoch >= 1

    # the animal is found past token 512: the tail of a long text is not dropped
    long_text = " ".join(["the old road was quiet today"] * 110) + " near the zebra"
    assert len(model.tokenizer(long_text)["input_ids"]) > 600
    spans = model.get_span([long_text], "Extract the animal.")[0]
    assert any(s.text == "zebra" and s.start > len(long_text) - 20 for s in spans)

    # continual re-tuning: a saved checkpoint fine-tunes further and records its history
    model.save(tmp_path / "first")
    again = Metamodel.load(tmp_path / "first")
    assert _score(again, test) == (f1_after, acc_after)
    again.fine_tune(_toy_examples(20, seed=3), epochs=1, progress=False)
    assert len(again.config["history"]) == 2


def test_fine_tune_is_deterministic_under_a_seed(tiny_encoder_path):
    examples = _toy_examples(50, seed=4)
    weights = []
    for _ in range(2):
        model = Metamodel.from_base(str(tiny_encoder_path), seed=7)
        model.fine_tune(examples, epochs=2, seed=3, progress=False)
        weights.append(model.model.classifier.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_fine_tune_rejects_bad_examples(tiny):
    with pytest.raises(ConfigError, match="at least one example"):
        tiny.fine_tune([], progress=False)
    with pytest.raises(ConfigError, match="LabelExample or SpanExample"):
        tiny.fine_tune([("text", "instr", True)], progress=False)


def test_epoch_budget_obeys_explicit_epochs_and_stretches_small_data():
    from falconer_core.training.loop import epoch_budget
    from falconer_core.training.settings import DEFAULT_EPOCHS, TrainingSettings

    assert epoch_budget(TrainingSettings(epochs=2), steps_per_epoch=4) == (2, 2)
    # 64 examples at batch 16: 4 steps an epoch, so 200 steps need 50 epochs, all before stopping
    assert epoch_budget(TrainingSettings(min_steps=200), steps_per_epoch=4) == (50, 50)
    # plenty of data: the default epoch cap, early stopping after min_epochs
    assert epoch_budget(TrainingSettings(min_steps=200), steps_per_epoch=128) == (DEFAULT_EPOCHS, 4)


def test_small_sets_train_without_a_dev_split_that_would_be_noise(tiny_encoder_path):
    model = Metamodel.from_base(str(tiny_encoder_path))
    summary = model.fine_tune(_toy_examples(30, seed=5), epochs=1, progress=False)  # 60 examples: dev of 6
    assert summary.n_dev == 0 and summary.n_train == 60


def test_span_threshold_is_calibrated_on_dev_and_saved(tiny_encoder_path, tmp_path):
    from falconer_core.evaluation import word_f1
    from falconer_core.metamodel.decoding import spans_from_word_probs
    from falconer_core.training.loop import THRESHOLD_GRID, calibrate_span_thresholds

    model = Metamodel.from_base(str(tiny_encoder_path))
    dev = [e for e in _toy_examples(40, seed=6) if isinstance(e, SpanExample)]
    chosen = calibrate_span_thresholds(model, dev)[0]
    assert chosen in THRESHOLD_GRID
    texts, gold = [e.text for e in dev], [list(e.spans) for e in dev]
    probs = model.span_word_probs(texts, "Extract the animal.", progress=False)

    def f1(t):
        return word_f1([spans_from_word_probs(texts[i], *probs[i], t) for i in range(len(texts))], gold, texts)["f1"]

    assert f1(chosen) == max(f1(t) for t in THRESHOLD_GRID)
    assert calibrate_span_thresholds(model, dev[:5])[0] is None  # too few to trust

    # fine_tune calibrates on its own dev split (60 examples, about 30 of them spans) and saves it
    report = model.fine_tune(_toy_examples(150, seed=7), epochs=1, dev_fraction=0.2, progress=False)
    assert report.n_dev == 60 and report.span_threshold in THRESHOLD_GRID
    assert model.span_threshold == report.span_threshold
    model.save(tmp_path / "ckpt")
    assert Metamodel.load(tmp_path / "ckpt").span_threshold == report.span_threshold


def test_each_span_instruction_gets_its_own_threshold_where_dev_has_enough_of_it(tiny_encoder_path, tmp_path):
    """A re-tuned model answers several span steps; one threshold for all of them serves the one
    with most span words. Each instruction with enough dev examples is calibrated on its own."""
    import dataclasses

    from falconer_core.evaluation import word_f1
    from falconer_core.metamodel.decoding import spans_from_word_probs
    from falconer_core.training.loop import THRESHOLD_GRID, calibrate_span_thresholds, set_span_thresholds

    model = Metamodel.from_base(str(tiny_encoder_path))
    animals = [e for e in _toy_examples(60, seed=8) if isinstance(e, SpanExample)]
    # a second span step on the same texts: their first word
    others = [dataclasses.replace(e, instruction="Extract the first word.",
                                  spans=[Span(e.text.split()[0], 0, len(e.text.split()[0]))]) for e in animals[:30]]
    dev = animals[:40] + others

    def best(examples):
        texts, gold = [e.text for e in examples], [list(e.spans) for e in examples]
        probs = model.span_word_probs(texts, [e.instruction for e in examples], progress=False)
        f1 = {t: word_f1([spans_from_word_probs(texts[i], *probs[i], t) for i in range(len(texts))], gold, texts)["f1"]
              for t in THRESHOLD_GRID}
        return f1, max(f1.values())

    overall, own = calibrate_span_thresholds(model, dev)
    assert set(own) == {"Extract the animal.", "Extract the first word."}
    for chosen, examples in ((overall, dev), (own["Extract the animal."], animals[:40]), (own["Extract the first word."], others)):
        f1, top = best(examples)
        assert f1[chosen] == top  # each the best on its own examples
    _, few = calibrate_span_thresholds(model, animals[:40] + others[:10])  # 10 of the second: too few for its own
    assert set(few) == {"Extract the animal."}
    assert calibrate_span_thresholds(model, animals[:40])[1] == {}  # one instruction: the overall one is its own

    # the model decodes each text at its instruction's threshold, and keeps them when saved
    model.config["span_thresholds"] = {"Extract the first word.": 0.2}
    model.config["span_threshold"] = 0.6
    texts = [e.text for e in others[:6]]
    asks = ["Extract the first word.", "Extract the animal."] * 3
    probs = model.span_word_probs(texts, asks, progress=False)
    expected = [spans_from_word_probs(texts[i], *probs[i], 0.2 if i % 2 == 0 else 0.6) for i in range(6)]
    assert model.get_span(texts, asks, progress=False) == expected
    model.save(tmp_path / "ckpt")
    assert Metamodel.load(tmp_path / "ckpt").span_threshold_for("Extract the first word.") == 0.2
    assert set_span_thresholds(model, dev) == (overall, own) and model.config["span_thresholds"] == own


def test_shape_ids_give_back_the_casing_an_uncased_tokenizer_drops(tiny):
    from falconer_core.metamodel.shapes import LOWER, MIXED, NO_LETTERS, TITLE, UPPER, case_class, shape_id

    assert [case_class(s) for s in ("brca", "Brca", "BRCA", "HeLa", "42-", "A")] == [LOWER, TITLE, UPPER, MIXED, NO_LETTERS, TITLE]
    assert tiny.config["shape_features"] is True  # the packaged MiniLM tokenizer lowercases
    upper, lower = tiny.encoder.encode_texts(["BRCA1", "brca1"])
    assert upper.ids == lower.ids and upper.shapes != lower.shapes
    assert upper.shapes[0] == shape_id("BRCA1", "BRCA") and upper.shapes[-1] == shape_id("BRCA1", "1")
    (window,) = tiny.encoder.windows(0, upper, "span", "Extract the gene.")
    assert len(window.shape_ids) == len(window.input_ids)
    text_part = window.shape_ids[window.text_offset : window.text_offset + len(upper.ids)]
    assert text_part == upper.shapes
    assert sum(window.shape_ids) == sum(upper.shapes)  # prompt and special tokens are 0


def _case_examples(n: int, seed: int):
    """Only casing tells the answer: the same words, one of them Capitalised."""
    rng = random.Random(seed)
    words = ["the", "old", "road", "was", "quiet", "today", "near", "town", "river", "stone"]
    out = []
    for _ in range(n):
        chosen = rng.sample(words, 6)
        k = rng.randrange(6)
        chosen[k] = chosen[k].capitalize()
        text = " ".join(chosen)
        start = len(" ".join(chosen[:k])) + (1 if k else 0)
        out.append(SpanExample(text, "Extract the capitalised word.", [Span(chosen[k], start, start + len(chosen[k]))]))
    return out


@pytest.mark.parametrize("shapes", [True, False])
def test_shape_features_let_the_model_learn_a_casing_only_task(tiny_encoder_path, shapes):
    from falconer_core.evaluation import word_f1

    model = Metamodel.from_base(str(tiny_encoder_path), shape_features=shapes)
    model.fine_tune(_case_examples(120, seed=1), epochs=15, learning_rate=3e-3, batch_size=8, progress=False)
    test = _case_examples(60, seed=2)
    texts = [e.text for e in test]
    f1 = word_f1(model.get_span(texts, "Extract the capitalised word."), [list(e.spans) for e in test], texts)["f1"]
    if shapes:
        assert f1 > 0.9
    else:  # the tokens of "Road" and "road" are the same: the plain encoder cannot tell
        assert f1 < 0.5


def test_shape_embedding_is_saved_loaded_and_required(tiny_encoder_path, tmp_path):
    model = Metamodel.from_base(str(tiny_encoder_path))
    with torch.no_grad():
        model.shape_embedding.weight[1:].normal_()
    before = model.get_span(TEXTS, "Extract the names.", progress=False)
    model.save(tmp_path / "ckpt")
    loaded = Metamodel.load(tmp_path / "ckpt")
    assert torch.equal(loaded.shape_embedding.weight, model.shape_embedding.weight)
    assert loaded.get_span(TEXTS, "Extract the names.", progress=False) == before
    (tmp_path / "ckpt" / "shape_embedding.safetensors").unlink()
    with pytest.raises(ModelError, match="shape features but has no"):
        Metamodel.load(tmp_path / "ckpt")

    plain = Metamodel.from_base(str(tiny_encoder_path), shape_features=False)
    plain.save(tmp_path / "plain")
    assert not (tmp_path / "plain" / "shape_embedding.safetensors").exists()
    assert Metamodel.load(tmp_path / "plain").shape_embedding is None


def test_only_models_with_a_trained_head_score_zero_shot(tiny_encoder_path, tmp_path):
    from falconer_core.metamodel.source import has_trained_head
    from tests.conftest import make_tiny_encoder

    assert not has_trained_head(ModelSource.base(str(tiny_encoder_path)))
    tagging = make_tiny_encoder(tmp_path / "bio", id2label={0: "O", 1: "B", 2: "I"})
    assert has_trained_head(ModelSource.base(str(tagging)))
    assert has_trained_head(ModelSource(path=str(tmp_path), base_model="x", checkpoint=True))


# ---------------------------------------------------------------------- inference precision
def test_int8_spans_and_labels_are_well_formed_and_the_head_and_casing_stay_fp32(tiny_encoder_path):
    from falconer_core.metamodel.precision import is_quantized

    tiny = Metamodel.from_base(str(tiny_encoder_path))
    with torch.no_grad():
        tiny.shape_embedding.weight[1:].normal_()
    int8 = tiny.with_precision("int8")
    assert int8.precision == "int8" and is_quantized(int8.model) and int8.device.type == "cpu"
    assert tiny.precision == "fp32" and not is_quantized(tiny.model)  # the original is untouched
    assert type(int8.model.classifier) is torch.nn.Linear
    quantized = [m for m in int8.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert quantized and all(m.weight().qscheme() == torch.per_channel_affine for m in quantized)
    assert torch.equal(int8.model.classifier.weight, tiny.model.classifier.weight)
    assert torch.equal(int8.shape_embedding.weight, tiny.shape_embedding.weight)
    spans = int8.get_span(TEXTS, "Extract the names.", progress=False)
    assert len(spans) == len(TEXTS)
    check_offsets(TEXTS, spans)
    labels = int8.get_label(TEXTS + [""], "Is it French?", progress=False)
    assert len(labels) == len(TEXTS) + 1 and all(0.5 <= r.confidence <= 1.0 for r in labels)


def test_int8_agrees_with_fp32_on_a_trained_toy_task(toy_trained):
    model, test, _, _ = toy_trained
    int8 = model.with_precision("int8")
    assert _score(int8, test)[0] >= _score(model, test)[0] - 0.05
    texts = [e.text for e in test if isinstance(e, SpanExample)]
    fp32_probs = model.span_word_probs(texts, "Extract the animal.", progress=False)
    int8_probs = int8.span_word_probs(texts, "Extract the animal.", progress=False)
    diffs = np.concatenate([np.abs(fp32_probs[i][1] - int8_probs[i][1]).ravel() for i in fp32_probs])
    assert 0 < diffs.max() and diffs.mean() < 0.03  # quantized (not identical) yet close
    instruction = "Does the text name an animal?"
    fp32_labels, int8_labels = model.get_label(texts, instruction), int8.get_label(texts, instruction)
    assert sum(a.value == b.value for a, b in zip(fp32_labels, int8_labels)) >= 0.95 * len(texts)


def test_int8_is_inference_only(tiny_encoder_path, tmp_path):
    int8 = Metamodel.from_base(str(tiny_encoder_path), precision="int8")
    with pytest.raises(ModelError, match="inference-only: cannot fine-tune"):
        int8.fine_tune(_toy_examples(5, seed=0), epochs=1, progress=False)
    with pytest.raises(ModelError, match="cannot save"):
        int8.save(tmp_path / "ckpt")
    with pytest.raises(ModelError, match="cannot make a fp32 copy"):
        int8.with_precision("fp32")
    assert not (tmp_path / "ckpt").exists()


def test_int8_loads_from_a_saved_checkpoint(tiny, tmp_path):
    tiny.save(tmp_path / "ckpt")
    loaded = Metamodel.load(tmp_path / "ckpt", precision="int8")
    assert loaded.precision == "int8" and loaded.config == Metamodel.load(tmp_path / "ckpt").config
    check_offsets(TEXTS, loaded.get_span(TEXTS, "Extract the names.", progress=False))


def test_precision_is_checked_against_the_device(tiny_encoder_path, monkeypatch):
    from falconer_core.metamodel import precision as P

    monkeypatch.setattr(P, "detect_capabilities", lambda: P.Capabilities(cuda=False, cpu_capability="AVX2"))
    with pytest.raises(ConfigError, match="bf16 needs a CUDA device or a CPU with bf16 units"):
        Metamodel.from_base(str(tiny_encoder_path), precision="bf16", device="cpu")
    with pytest.raises(ConfigError, match="int8 runs on CPU only"):
        Metamodel.from_base(str(tiny_encoder_path), precision="int8", device="cuda")
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        Metamodel.from_base(str(tiny_encoder_path), precision="fp16")
    if not torch.cuda.is_available():  # bf16 with no device named: the CPU, which has no bf16 units here
        with pytest.raises(ConfigError, match="bf16 needs a CUDA device or a CPU with bf16 units"):
            Metamodel.from_base(str(tiny_encoder_path), precision="bf16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast runs on CUDA only")
def test_bf16_on_cuda_gives_well_formed_results_close_to_fp32(tiny):
    bf16 = tiny.with_precision("bf16", device="cuda")
    assert bf16.device.type == "cuda" and bf16.batch_size > tiny.batch_size
    check_offsets(TEXTS, bf16.get_span(TEXTS, "Extract the names.", progress=False))
    fp32_probs = tiny.span_word_probs(TEXTS, "Extract the names.", progress=False)
    bf16_probs = bf16.span_word_probs(TEXTS, "Extract the names.", progress=False)
    assert max(np.abs(fp32_probs[i][1] - bf16_probs[i][1]).max() for i in fp32_probs) < 0.05


def test_open_metamodel_keeps_one_instance_per_source_and_precision(tiny_encoder_path):
    from falconer_core.metamodel.source import open_metamodel

    source = ModelSource.base(str(tiny_encoder_path))
    fp32, int8 = open_metamodel(source), open_metamodel(source, precision="int8")
    assert fp32.precision == "fp32" and int8.precision == "int8" and fp32 is not int8
    assert open_metamodel(source) is fp32 and open_metamodel(source, precision="int8") is int8
    assert open_metamodel(source, fresh=True, precision="int8") is not int8


def test_fp32_and_bf16_of_one_source_share_one_load(tiny_encoder_path, monkeypatch):
    """A run in bf16 whose drift check measures in fp32 loads the checkpoint once."""
    from falconer_core.errors import ModelError
    from falconer_core.metamodel import precision as P
    from falconer_core.metamodel import source as S
    from falconer_core.metamodel.precision import is_quantized
    from falconer_core.metamodel.source import LOADS, open_metamodel

    monkeypatch.setattr(P, "detect_capabilities", lambda: P.Capabilities(
        cuda=False, cpu_capability="AVX512", cpu_flags=frozenset({"avx512_bf16"}), cpu_model="EPYC"))
    monkeypatch.setattr(S, "_OPEN", {})  # nothing opened by other tests
    source = ModelSource.base(str(tiny_encoder_path))
    bf16 = open_metamodel(source, precision="bf16")
    loads = LOADS[source.identity]
    fp32 = open_metamodel(source)
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    assert fp32.model is bf16.model and LOADS[source.identity] == loads  # shared weights, no second load
    assert open_metamodel(source) is fp32
    probs = fp32.span_word_probs(TEXTS, "Extract the names.", progress=False)
    alone = Metamodel.from_base(str(tiny_encoder_path)).span_word_probs(TEXTS, "Extract the names.", progress=False)
    assert all(np.allclose(probs[i][1], alone[i][1], atol=1e-5) for i in probs)  # fp32 answers, not bf16 ones
    int8 = open_metamodel(source, precision="int8")
    assert int8.model is not bf16.model  # int8 has weights of its own
    with pytest.raises(ModelError, match="cannot share weights"):
        fp32.sharing("int8")
    assert not is_quantized(fp32.model)  # refused before anything was quantised in place


def _rare_positive_examples(n: int, positives: int) -> list[SpanExample]:
    out = []
    for i in range(n):
        text = f"sample {i} mentions zebra" if i < positives else f"sample {i} is quiet"
        spans = [Span("zebra", text.index("zebra"), len(text))] if i < positives else []
        out.append(SpanExample(text, "Extract the animal.", spans))
    return out


def test_dev_split_is_stratified_so_rare_positives_reach_dev():
    from falconer_core.training.loop import is_positive, split_dev
    from falconer_core.training.settings import TrainingSettings

    examples = _rare_positive_examples(200, positives=4)  # 2%: a plain 20-example draw misses them 2 times in 3
    examples += [LabelExample(e.text, "Does it name an animal?", bool(e.spans)) for e in examples[:100]]
    settings = TrainingSettings(dev_fraction=0.1, min_dev_examples=20)
    for seed in range(30):
        train, dev = split_dev(examples, settings, random.Random(seed))
        assert len(dev) == 30 and len(train) == 270
        assert sorted(map(id, train + dev)) == sorted(map(id, examples))
        for kind in (SpanExample, LabelExample):
            assert any(is_positive(e) for e in dev if isinstance(e, kind)), (seed, kind)
            assert any(is_positive(e) for e in train if isinstance(e, kind)), (seed, kind)
        assert sum(isinstance(e, LabelExample) for e in dev) == 10  # proportional: a third of the examples
    assert split_dev(examples, settings, random.Random(1)) == split_dev(examples, settings, random.Random(1))
    assert split_dev(examples[:150], TrainingSettings(min_dev_examples=20), random.Random(0))[1] == []


def test_the_epoch_kept_is_the_best_by_smoothed_dev_score(tiny_encoder_path):
    from falconer_core.training.loop import smoothed_score

    assert smoothed_score([0.2], 2) == 0.2 and smoothed_score([0.2, 0.6, 0.4], 2) == 0.5
    assert smoothed_score([0.2, 0.6, 0.4], 1) == 0.4
    model = Metamodel.from_base(str(tiny_encoder_path), seed=1)
    summary = model.fine_tune(_toy_examples(120, seed=8), epochs=6, patience=6, learning_rate=1e-3,
                              dev_smoothing=2, calibrate_threshold=False, progress=False)
    running = [smoothed_score(summary.dev_scores[: e + 1], 2) for e in range(len(summary.dev_scores))]
    assert summary.best_epoch == 1 + max(range(len(running)), key=lambda e: (running[e], -e))
    assert summary.best_dev_score == pytest.approx(max(running), abs=1e-5)


def test_texts_are_tokenised_in_blocks_ahead_of_the_forward_with_the_same_answers(tiny, monkeypatch):
    """Blocks of texts are tokenised on a helper thread while the previous block runs; the
    answers equal those of one block (each block still sorts its windows by length)."""
    import threading

    from falconer_core.metamodel import model as model_module

    texts = [f"Ada Lovelace met Charles Babbage in London, day {k}." * (1 + k % 4) for k in range(23)]
    texts[5] = "  "
    whole_spans = tiny.get_span(texts, "Extract the names of people.")
    whole_labels = tiny.get_label(texts, "Is this about computing?")
    seen: set[str] = set()
    encode = tiny.encoder.encode_texts

    def spy(batch):
        seen.add(threading.current_thread().name)
        return encode(batch)

    monkeypatch.setattr(tiny.encoder, "encode_texts", spy)
    monkeypatch.setattr(model_module, "TOKENIZE_BLOCK", 4)
    assert tiny.get_span(texts, "Extract the names of people.") == whole_spans
    blocked = tiny.get_label(texts, "Is this about computing?")
    assert [r.value for r in blocked] == [r.value for r in whole_labels]
    assert max(abs(a.confidence - b.confidence) for a, b in zip(blocked, whole_labels)) < 1e-5
    assert seen and all(name.startswith("falconer-tokenize") for name in seen)
