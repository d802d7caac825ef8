"""`Metamodel`: one encoder checkpoint that answers `get_label` and `get_span` for any
instruction, fine-tunes on a few hundred examples, and saves to a plain folder."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from falconer_core.errors import ConfigError, ModelError
from falconer_core.metamodel.batching import collate
from falconer_core.metamodel.decoding import label_from_choice_probs, merge_word_probs, spans_from_word_probs
from falconer_core.metamodel.precision import (
    REFERENCE_PRECISION,
    Bf16Copy,
    Precision,
    PrecisionChoice,
    autocast,
    default_device_type,
    inference_batch_size,
    quantize_int8,
    resolve_precision,
)
from falconer_core.metamodel.prompt import LABELS, B, EncodedText, PromptEncoder, PromptFormat
from falconer_core.metamodel.shapes import WEIGHTS_FILE as SHAPE_WEIGHTS
from falconer_core.metamodel.shapes import ShapeEmbedding, tokenizer_lowercases
from falconer_core.metamodel.source import DEFAULT_BASE, default_base_path
from falconer_core.training.loop import train
from falconer_core.training.settings import TrainingSettings
from falconer_core.training.threads import pinned_threads, training_threads
from falconer_core.types import Example, Instructions, LabelResult, Span, per_text_instructions

CONFIG_FILE = "falconer.json"
#: Texts tokenised at a time, the next block while the forward passes of one run; a call with
#: fewer texts batches exactly as a single block (one length sort over all its windows).
TOKENIZE_BLOCK = 2048
FORMAT_VERSION = 1
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}


def pick_device(device: str | None = None, precision: str = REFERENCE_PRECISION) -> torch.device:
    """Use the GPU when there is one, unless told otherwise or the precision is CPU-only (int8)."""
    if device:
        return torch.device(device)
    return torch.device(default_device_type(precision, torch.cuda.is_available()))


class Metamodel:
    """The proxy that executes plans; see `from_base`, `load`, `fine_tune`, `get_label`, `get_span`."""

    def __init__(
        self, model, tokenizer, config: dict, device: str | None = None, shape_embedding: ShapeEmbedding | None = None,
        precision: PrecisionChoice = REFERENCE_PRECISION,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.device = pick_device(device, precision)
        #: How inference computes (`precision.py`): fp32, int8 (CPU) or bf16 (CUDA, CPU with
        #: bf16 units); `auto` is resolved here to the fastest this machine runs well.
        self.precision: Precision = resolve_precision(precision, self.device.type)
        self.model.to(self.device).eval()
        if self.precision == "int8":
            quantize_int8(self.model)
        if config.get("shape_features") and shape_embedding is None:
            shape_embedding = ShapeEmbedding(model.get_input_embeddings().embedding_dim)
        self.shape_embedding = shape_embedding.to(self.device) if shape_embedding is not None else None
        self.format = PromptFormat(**config["prompt"])
        self.encoder = PromptEncoder(
            tokenizer, config["max_length"], self.format, config["overlap"], shapes=self.shape_embedding is not None
        )
        self.batch_size = inference_batch_size(self.device.type)
        self._bf16 = Bf16Copy()

    @property
    def span_threshold(self) -> float:
        """P(inside a span) above which a word is tagged; fine-tuning calibrates it on dev."""
        return self.config.get("span_threshold", 0.5)

    def span_threshold_for(self, instruction: str) -> float:
        """The threshold calibrated for this instruction (a span step), else `span_threshold`."""
        return self.config.get("span_thresholds", {}).get(instruction, self.span_threshold)

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_base(
        cls,
        name_or_path: str | None = None,
        *,
        max_length: int = 512,
        overlap: int = 64,
        seed: int = 0,
        device: str | None = None,
        shape_features: bool | None = None,
        precision: PrecisionChoice = REFERENCE_PRECISION,
    ) -> Metamodel:
        """Start from an encoder: the packaged MiniLM by default, or any Hugging Face path or id
        (e.g. `KomeijiForce/Cuckoo-C4-Super-Rainbow`, whose BIO head is kept). `shape_features`
        adds learned casing features (see `shapes.py`); by default only when the tokenizer
        lowercases, as the packaged MiniLM's does. `precision` is for inference (`precision.py`)."""
        from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

        path = default_base_path() if name_or_path in (None, DEFAULT_BASE) else name_or_path
        try:
            base_config = AutoConfig.from_pretrained(path)
            tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"cannot load base encoder {path!r}: {err}. Pass a local folder, or a hub id on a "
                "machine with hub access (HF_HUB_OFFLINE unset)."
            ) from err
        if not tokenizer.is_fast:
            raise ModelError(f"{path!r} has no fast tokenizer; character offsets need one")
        names = [str(base_config.id2label.get(i, "")).upper() for i in range(base_config.num_labels)]
        keep_head = sorted(names) == ["B", "I", "O"]
        torch.manual_seed(seed)
        kwargs = {}
        if not keep_head:
            kwargs = {"ignore_mismatched_sizes": True, "num_labels": 3, "id2label": dict(enumerate(LABELS)), "label2id": {l: i for i, l in enumerate(LABELS)}}
        model = _quietly(AutoModelForTokenClassification.from_pretrained, path, **kwargs)
        if keep_head:  # reorder a BIO head (e.g. Cuckoo's) to our O/B/I ids
            order = [names.index(label) for label in LABELS]
            with torch.no_grad():
                model.classifier.weight.copy_(model.classifier.weight[order].clone())
                model.classifier.bias.copy_(model.classifier.bias[order].clone())
            model.config.id2label = dict(enumerate(LABELS))
            model.config.label2id = {l: i for i, l in enumerate(LABELS)}
        positions = base_config.max_position_embeddings - _POSITION_OFFSET.get(base_config.model_type, 0)
        config = {
            "format_version": FORMAT_VERSION,
            "base_model": name_or_path or DEFAULT_BASE,
            "prompt": PromptFormat().to_dict(),
            "label_scheme": {"tags": list(LABELS), "label": "BIO tag on the 'yes'/'no' choice token"},
            "max_length": min(max_length, positions),
            "overlap": overlap,
            "shape_features": tokenizer_lowercases(tokenizer) if shape_features is None else shape_features,
            "history": [],
        }
        return cls(model, tokenizer, config, device, precision=precision)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, device: str | None = None, precision: PrecisionChoice = REFERENCE_PRECISION
    ) -> Metamodel:
        """Load a folder written by `save`, to run at `precision` (fp32, int8 on CPU, bf16 on CUDA
        or a CPU with bf16 units, or `auto`)."""
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        folder = Path(path)
        config_file = folder / CONFIG_FILE
        if not config_file.is_file():
            raise ModelError(f"{folder} is not a Falconer checkpoint (no {CONFIG_FILE}); save one with Metamodel.save")
        config = json.loads(config_file.read_text())
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise ModelError(f"{folder} was written by a newer Falconer (format {config['format_version']})")
        model = _quietly(AutoModelForTokenClassification.from_pretrained, folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        shape_embedding = None
        if config.get("shape_features"):
            if not (folder / SHAPE_WEIGHTS).is_file():
                raise ModelError(f"{folder} uses shape features but has no {SHAPE_WEIGHTS}")
            shape_embedding = ShapeEmbedding.load(folder)
        return cls(model, tokenizer, config, device, shape_embedding, precision)

    def with_precision(self, precision: PrecisionChoice, *, device: str | None = None) -> Metamodel:
        """A copy of this model that runs at `precision` on `device` (by default where that
        precision runs, as in `load`); this one is left as it is. Only an fp32 or bf16 model can
        be copied: int8 weights cannot be turned back into fp32 ones."""
        self._require_full_weights(f"make a {precision} copy")
        shape = copy.deepcopy(self.shape_embedding) if self.shape_embedding is not None else None
        return type(self)(
            copy.deepcopy(self.model), self.tokenizer, copy.deepcopy(self.config), device, shape, precision
        )

    def sharing(self, precision: PrecisionChoice) -> Metamodel:
        """This model's weights, run at another precision, without a copy: for inference only
        (training either would change both). fp32 and bf16 share fp32 weights (bf16 runs them
        under autocast), so a process that executes in bf16 measures drift in fp32 for free."""
        self._require_full_weights(f"run it at {precision}")
        if resolve_precision(precision, self.device.type) == "int8":  # before any view: int8 quantises in place
            raise ModelError("an int8 model cannot share weights with an fp32 one; use with_precision")
        return type(self)(self.model, self.tokenizer, self.config, str(self.device), self.shape_embedding, precision)

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights, tokenizer and `falconer.json` (prompt format, label scheme, history)."""
        self._require_full_weights("save it")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        if self.shape_embedding is not None:
            self.shape_embedding.save(folder)
        (folder / CONFIG_FILE).write_text(json.dumps(self.config, indent=2))
        return folder

    # ------------------------------------------------------------------ the two primitives
    def get_label(
        self, texts: Sequence[str], instruction: Instructions, *, batch_size: int | None = None,
        progress: bool | None = None,
    ) -> list[LabelResult]:
        """Does the instruction hold for each text? A bool and the model's confidence in it.
        Empty or whitespace-only texts answer False with full confidence."""
        texts, instructions = _check_texts(texts), per_text_instructions(texts, instruction)
        results: list[LabelResult] = [LabelResult(False, 1.0)] * len(texts)
        for item, windows, probs in self._run("label", texts, instructions, batch_size, progress):
            results[item] = label_from_choice_probs([p[list(w.choice_positions), B] for w, p in zip(windows, probs)])
        return results

    def get_span(
        self, texts: Sequence[str], instruction: Instructions, *, batch_size: int | None = None,
        progress: bool | None = None,
    ) -> list[list[Span]]:
        """The spans of each text that answer the instruction, with character offsets."""
        texts, instructions = _check_texts(texts), per_text_instructions(texts, instruction)
        results: list[list[Span]] = [[] for _ in texts]
        for item, (encoded, word_probs) in self.span_word_probs(texts, instruction, batch_size=batch_size, progress=progress).items():
            threshold = self.span_threshold_for(instructions[item])
            results[item] = spans_from_word_probs(texts[item], encoded, word_probs, threshold)
        return results

    def span_word_probs(
        self, texts: Sequence[str], instruction: Instructions, *, batch_size: int | None = None,
        progress: bool | None = None,
    ) -> dict[int, tuple[EncodedText, np.ndarray]]:
        """O/B/I probabilities per word of each non-empty text, windows merged: what
        `get_span` decodes, exposed so a threshold can be tuned without a second forward pass."""
        texts, instructions = _check_texts(texts), per_text_instructions(texts, instruction)
        encoded: dict[int, EncodedText] = {}
        out = {}
        for item, windows, probs in self._run("span", texts, instructions, batch_size, progress, encoded):
            text_probs = [p[w.text_offset : w.text_offset + w.token_end - w.token_start] for w, p in zip(windows, probs)]
            out[item] = (encoded[item], merge_word_probs(encoded[item], windows, text_probs))
        return out

    def _run(self, kind, texts, instructions, batch_size, progress, encoded_out=None):
        """Encode, window, bucket by length, forward; yield (item, windows, probs) per text.

        Texts go in blocks of `TOKENIZE_BLOCK`: a helper thread tokenises and windows the next
        block while the forward passes of this one run (torch releases the GIL in its kernels),
        and each block's windows are sorted by length into batches, so padding stays small."""
        live = [i for i, t in enumerate(texts) if t.strip()]
        size = batch_size or self.batch_size
        blocks = [live[start : start + TOKENIZE_BLOCK] for start in range(0, len(live), TOKENIZE_BLOCK)]

        def prepare(items: list[int]) -> tuple[dict[int, EncodedText], list]:
            encoded = dict(zip(items, self.encoder.encode_texts([texts[i] for i in items])))
            return encoded, [w for i in items for w in self.encoder.windows(i, encoded[i], kind, instructions[i])]

        show = progress if progress is not None else len(live) > 4 * size
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="falconer-tokenize") as tokenizer,
            torch.inference_mode(), autocast(self.precision, self.device),
            tqdm(total=len(live), disable=not show, desc=f"get_{kind}", unit="text") as bar,
        ):
            ahead = tokenizer.submit(prepare, blocks[0]) if blocks else None
            for number in range(len(blocks)):
                encoded, windows = ahead.result()
                ahead = tokenizer.submit(prepare, blocks[number + 1]) if number + 1 < len(blocks) else None
                if encoded_out is not None:
                    encoded_out.update(encoded)
                probs = self._forward_windows(windows, size)
                by_item: dict[int, list[int]] = {}
                for k, window in enumerate(windows):
                    by_item.setdefault(window.item, []).append(k)
                for item, ks in by_item.items():
                    yield item, [windows[k] for k in ks], [probs[k] for k in ks]
                bar.update(len(encoded))

    def _forward_windows(self, windows: list, size: int) -> list[np.ndarray]:
        """Class probabilities per token of each window, batched `size` at a time by length."""
        probs: list[np.ndarray | None] = [None] * len(windows)
        weights = self._inference_weights()
        order = sorted(range(len(windows)), key=lambda k: len(windows[k].input_ids))
        for chunk in _chunks(order, size):
            batch = collate([windows[k] for k in chunk], self.tokenizer.pad_token_id, self.device)
            logits = self.forward(batch, weights).logits
            out = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            for row, k in enumerate(chunk):
                probs[k] = out[row, : len(windows[k].input_ids)]
        return probs  # type: ignore[return-value]

    def forward(self, batch: dict[str, torch.Tensor], weights: tuple | None = None):
        """The encoder's output for a collated batch (with a loss when it carries labels);
        shape features, when on, are added to the token embeddings. `weights`: (model, shape
        embedding) to run instead of the trained ones (`_inference_weights`)."""
        model, shape = weights or (self.model, self.shape_embedding)
        inputs = {"attention_mask": batch["attention_mask"], "labels": batch.get("labels")}
        if shape is None:
            return model(input_ids=batch["input_ids"], **inputs)
        embeds = model.get_input_embeddings()(batch["input_ids"]) + shape(batch["shape_ids"])
        return model(inputs_embeds=embeds, **inputs)

    def _inference_weights(self) -> tuple:
        """What inference runs: on a CPU in bf16, bf16 copies of the weights (cast once, not on
        every forward as autocast alone would); otherwise the model itself."""
        if self.precision == "bf16" and self.device.type == "cpu":
            return tuple(self._bf16.of([self.model, self.shape_embedding]))
        return self.model, self.shape_embedding

    def modules(self) -> list[torch.nn.Module]:
        """Everything that holds trained weights."""
        return [self.model] + ([self.shape_embedding] if self.shape_embedding is not None else [])

    # ------------------------------------------------------------------ training
    def fine_tune(
        self, examples: Sequence[Example], settings=None, *, unlabeled_texts: Sequence[str] | None = None,
        replay: Sequence[Example] = (), **overrides,
    ):
        """Fine-tune on label and span examples (mixed) with a dev split and early stopping;
        calling it on a loaded checkpoint continues from it (continual re-tuning), and `replay`
        (earlier tasks' examples, `training/replay.py`) is rehearsed within `replay_share` of
        each epoch. With `unlabeled_texts` (and `settings.unlabeled`), self-training follows
        (`selftraining.py`). Training runs in fp32 (a bf16 model trains its fp32 weights); an
        int8 model cannot be trained."""
        self._require_full_weights("fine-tune it")
        if settings is None:
            settings = TrainingSettings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        examples, replay = list(examples), list(replay)
        with pinned_threads(training_threads(settings.threads)) as threads:  # the count changes the weights
            summary = train(self, examples, settings, replay)
            if unlabeled_texts is not None and settings.unlabeled:
                from falconer_core.training.selftraining import self_train

                summary.self_training = self_train(self, examples, unlabeled_texts, settings, replay)
                summary.seconds = round(summary.seconds + summary.self_training.seconds, 2)
                if "span_threshold" in self.config:
                    summary.span_threshold = self.config["span_threshold"]
                    summary.span_thresholds = self.config.get("span_thresholds", {})
        summary.threads = threads
        self.config["history"].append({"settings": settings.model_dump(), **asdict(summary)})
        return summary

    def _require_full_weights(self, action: str) -> None:
        if self.precision == "int8":
            raise ModelError(
                f"this metamodel runs in int8, which is inference-only: cannot {action}. Open the fp32 "
                "checkpoint (Metamodel.load(path)) to fine-tune or save, and make int8 copies to run"
            )

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for module in self.modules() for p in module.parameters())


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("pass a list of texts, not a single string")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ConfigError(f"texts must be strings; items {bad[:5]} are not")
    return texts


def _quietly(fn, *args, **kwargs):
    """Load without the 'newly initialized head' warning: a fresh head is expected here."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return fn(*args, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
