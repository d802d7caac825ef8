"""What a credential is called: one pattern for the names of settings, params and environment
variables whose values must never be stored or logged (the store refuses them, the registry
drops them). Kept apart from `registry.redaction` so the store can use it without the registry."""

from __future__ import annotations

import re

#: Names that hold a credential (`api_key`, `OPENAI_API_KEY`, `llm.auth_token`, `HF_TOKEN`,
#: `password`, `access_token`, ...) but not `max_tokens`, `tokenizer` or `subtoken_labels`.
SECRET_NAME = re.compile(
    r"api[_\-]?key|secret|passw(?:or)?d|credential|authorization|bearer|private[_\-]?key"
    r"|access[_\-]?key|(?:access|auth)[_\-]?token|(?:^|[_.\-])token(?:$|[_.\-])",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Whether a key or variable name says its value is a credential."""
    return bool(SECRET_NAME.search(name))


__all__ = ["SECRET_NAME", "is_secret_name"]
