"""Keep credentials out of MLflow: an API key in a setting, tag or artifact would be readable by
anyone with the tracking database or artifact folder, and never goes away from run history."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from falconer_core.secrets import is_secret_name

REDACTED = "[redacted]"

# Values shaped like well-known keys, wherever they appear.
_SECRET_VALUE = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{35}|(?i:bearer\s+[A-Za-z0-9._~+/=\-]{8,})"
)
_MIN_SECRET_LENGTH = 8
_SCAN_CHUNK = 8 << 20


def env_secrets() -> dict[str, str]:
    """Values of the environment variables whose names say they are credentials (read now, so
    a key set after import is still caught)."""
    return {
        name: value
        for name, value in os.environ.items()
        if is_secret_name(name) and len(value) >= _MIN_SECRET_LENGTH
    }


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret value and every key-shaped token replaced."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _SECRET_VALUE.sub(REDACTED, text)


def clean_strings(values: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, str]:
    """Params or tags fit to log: secret-named keys dropped, secret values redacted."""
    secrets = tuple(secrets)
    return {
        key: redact(str(value), secrets)
        for key, value in values.items()
        if not is_secret_name(key)
    }


def clean_object(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """A JSON-ready copy of `obj` with secret-named keys dropped and strings redacted."""
    secrets = tuple(secrets)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    elif hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, Mapping):
        return {
            str(k): clean_object(v, secrets) for k, v in obj.items() if not is_secret_name(str(k))
        }
    if isinstance(obj, (list, tuple, set)):
        return [clean_object(v, secrets) for v in obj]
    if isinstance(obj, str):
        return redact(obj, secrets)
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    return redact(str(obj), secrets)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (`llm.temperature`), lists kept whole as JSON text."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    elif hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    if not isinstance(obj, Mapping):
        return {prefix or "value": obj}
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) or dataclasses.is_dataclass(value) or hasattr(value, "model_dump"):
            flat.update(flatten(value, name))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = value
    return flat


def find_secret_in_files(paths: Iterable[Path], secrets: Mapping[str, str]) -> tuple[Path, str] | None:
    """The first file (under `paths`, folders walked) holding the value of a secret variable, and
    that variable's name; read in chunks so a large checkpoint costs no more than its size."""
    needles = {name: value.encode() for name, value in secrets.items()}
    if not needles:
        return None
    overlap = max(len(v) for v in needles.values())
    for path in paths:
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
        for file in files:
            tail = b""
            with file.open("rb") as handle:
                while chunk := handle.read(_SCAN_CHUNK):
                    window = tail + chunk
                    for name, needle in needles.items():
                        if needle in window:
                            return file, name
                    tail = window[-overlap:]
    return None
