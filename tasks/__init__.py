"""Prefect tasks: one verb each, wrapping one `falconer_core` call, with retries where a fault
can pass (LLM calls, I/O) and cache policies keyed on the inputs that determine the result.

Cached results live under the Falconer home (see `tasks.policies`), so re-running a flow after
a failure, or with one input changed, redoes only what failed or changed.
"""

import logging

from tasks.active import grow_sample
from tasks.annotation import annotate
from tasks.cascade import audit, calibrate, record_cascade
from tasks.corpus import snapshot
from tasks.drift import check_drift
from tasks.drift_events import emit_drift_event
from tasks.evaluation import evaluate
from tasks.execution import execute_shard, plan_run
from tasks.planning import load_plan, make_plan
from tasks.registry import earlier_tasks, fetch_champion, fetch_model, fetch_plan, find_champion, register
from tasks.sampling import sample
from tasks.storage import commit_shard, finish_run, start_run, store_annotations, store_corpus
from tasks.training import fine_tune

# falconer_core logs progress (fine-tuning epochs, LLM retries) at INFO; with
# PREFECT_LOGGING_EXTRA_LOGGERS=falconer_core those lines reach the task run's logs.
logging.getLogger("falconer_core").setLevel(logging.INFO)

__all__ = [
    "annotate",
    "audit",
    "calibrate",
    "check_drift",
    "emit_drift_event",
    "commit_shard",
    "evaluate",
    "execute_shard",
    "earlier_tasks",
    "fetch_champion",
    "fetch_model",
    "fetch_plan",
    "find_champion",
    "finish_run",
    "grow_sample",
    "fine_tune",
    "load_plan",
    "make_plan",
    "plan_run",
    "record_cascade",
    "register",
    "sample",
    "snapshot",
    "start_run",
    "store_annotations",
    "store_corpus",
]
