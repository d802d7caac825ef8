"""Naming a model version: `NAME`, `NAME@alias`, `NAME/version` (optionally `models:/…`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from falconer_core.errors import FalconerError

#: The alias `execute` and `retune` use when a ref names only the model.
CHAMPION = "champion"
#: The alias every promoted version gets, whether or not it passes the gate.
CANDIDATE = "candidate"
#: MLflow's reserved alias for the highest version number.
LATEST = "latest"


class RegistryError(FalconerError, LookupError):
    """A model, version or alias is not in the registry, or a ref cannot be parsed."""


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered checkpoint; two refs are equal when they name the same model and version."""

    name: str
    version: int
    run_id: str | None = field(default=None, compare=False)
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"

    @classmethod
    def of(cls, mv: Any) -> ModelVersionRef:
        """The ref of an MLflow `ModelVersion`."""
        return cls(mv.name, int(mv.version), mv.run_id, tuple(sorted(mv.aliases or ())))

    @property
    def uri(self) -> str:
        """The MLflow model URI (`models:/NAME/VERSION`)."""
        return f"models:/{self.name}/{self.version}"


def parse_ref(ref: str | ModelVersionRef) -> tuple[str, int | None, str | None]:
    """Split a ref into (name, version, alias); at most one of version and alias is set.

    Registered model names cannot hold '/' (MLflow forbids it) and Falconer forbids '@' in the
    names it registers, so both separators are unambiguous."""
    if isinstance(ref, ModelVersionRef):
        return ref.name, ref.version, None
    text = str(ref).strip()
    if text.startswith("models:/"):
        text = text[len("models:/"):]
    if "/" in text:
        name, _, version = text.rpartition("/")
        if not name or not version.isdigit():
            raise RegistryError(f"bad model ref {ref!r}: expected NAME/VERSION with a whole-number version")
        return name, int(version), None
    if "@" in text:
        name, _, alias = text.rpartition("@")
        if not name or not alias:
            raise RegistryError(f"bad model ref {ref!r}: expected NAME@ALIAS")
        return name, None, alias
    if not text:
        raise RegistryError("empty model ref: expected NAME, NAME@ALIAS or NAME/VERSION")
    return text, None, None
