"""Prefect flows: `mine` (end to end), `incubate`, `execute`, `retune`, `evaluate`.

Each is a plain function too: `mine(corpus="tweets.csv", plan="plan.yaml")` runs it with the
embedded temporary Prefect server when no other is configured.
"""

from flows.evaluate import evaluate
from flows.execute import execute
from flows.incubate import incubate
from flows.mine import mine
from flows.retune import retune

__all__ = ["evaluate", "execute", "incubate", "mine", "retune"]
