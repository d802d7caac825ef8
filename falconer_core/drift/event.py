"""What a declared drift tells Prefect: the event's name, the model version and task it concerns,
and the corpus it drifted on. Plain data (no Prefect here): `tasks/drift_events.py` emits it and
the `retune-on-drift` deployment's trigger in `prefect.yaml` reads these same fields back, so
the names are kept in one place."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.corpus import CorpusSource
from falconer_core.registry.refs import parse_ref
from falconer_core.secrets import is_secret_name

#: The event a declared drift emits; the `retune-on-drift` trigger expects it.
DRIFT_EVENT = "falconer.model.drift"
#: Resource labels (strings, as Prefect requires) the trigger's parameters are read from.
MODEL_LABEL = "falconer.model"
PLAN_LABEL = "falconer.plan"


class DriftEvent(BaseModel):
    """A declared drift of one registered version on one task (plan), with its figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(description="The registered version that drifted (NAME/N).")
    plan_hash: str = Field(description="The task (plan hash) it drifted on.")
    corpus: CorpusSource = Field(description="Where the drifted corpus is, for the re-tune to sample from.")
    figures: dict[str, Any] = Field(default_factory=dict, description="The drift figures (signals, estimate, audit).")

    def resource(self) -> dict[str, str]:
        """The Prefect resource: the version, its model name and its task."""
        name, _, _ = parse_ref(self.version)
        return {
            "prefect.resource.id": f"falconer.model.{self.version}",
            "prefect.resource.name": self.version,
            MODEL_LABEL: self.version,
            "falconer.model.name": name,
            PLAN_LABEL: self.plan_hash,
        }

    def payload(self) -> dict[str, Any]:
        """The figures (JSON values only, no field named like a credential) and the corpus."""
        return {"figures": public_figures(self.figures), "corpus": self.corpus.model_dump()}


def public_figures(figures: Mapping[str, Any]) -> dict[str, Any]:
    """`figures` as plain JSON (numbers, strings, lists, mappings; NaN and infinities as None),
    with every key that names a credential dropped, at any depth: an event payload is readable
    by anyone who can read the Prefect server."""
    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items() if not is_secret_name(str(k))}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, BaseModel):  # a verdict or report: its fields, cleaned the same way
            return clean(value.model_dump(mode="json"))
        return json.loads(json.dumps(value, default=str))

    return clean(figures)


__all__ = ["DRIFT_EVENT", "MODEL_LABEL", "PLAN_LABEL", "DriftEvent", "public_figures"]
