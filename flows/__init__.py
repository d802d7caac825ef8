"""Prefect flows: `mine` (end to end), `incubate`, `execute`, `retune`, `evaluate`, and
`retune_on_drift` (what the `falconer.model.drift` trigger runs).

Each is a plain function too: `mine(corpus="tweets.csv", task={"plan": "plan.yaml"})` runs it
with the embedded temporary Prefect server when no other is configured. `task`
(`flows.parameters.TaskSpec`: instruction or plan, annotator, planner, base model or parent,
model name) and `incubation` are shared by `mine`, `incubate` and `retune`.
"""

from flows.evaluate import evaluate
from flows.execute import execute
from flows.incubate import incubate
from flows.mine import mine
from flows.retune import retune
from flows.retune_on_drift import retune_on_drift

__all__ = ["evaluate", "execute", "incubate", "mine", "retune", "retune_on_drift"]
