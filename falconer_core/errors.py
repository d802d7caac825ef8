"""One small exception family: each says what was wrong and how to fix it."""


class FalconerError(Exception):
    """Base of every error Falconer raises on purpose."""


class ConfigError(FalconerError, ValueError):
    """A setting, model path or argument is invalid."""


class CorpusError(FalconerError, ValueError):
    """A corpus cannot be read: missing file or column, empty, duplicate ids, bad bytes."""


class PlanError(FalconerError, ValueError):
    """A plan does not validate against the schema (or an LLM could not produce one that does)."""


class LLMError(FalconerError, RuntimeError):
    """An LLM call failed after its retries, or returned output that does not parse."""


class ModelError(FalconerError, RuntimeError):
    """A metamodel checkpoint cannot be loaded, trained or run."""
