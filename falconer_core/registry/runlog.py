"""Writing an MLflow run: open and close it, log its params and metrics in batches MLflow accepts,
under keys MLflow accepts. Shared by the fine-tune run and the cascade-audit run."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from falconer_core.clock import now_ms
from falconer_core.errors import ConfigError
from falconer_core.registry import redaction

_MLFLOW_KEY = re.compile(r"[^\w.\- /]")
#: Most params per `log_batch` call (MLflow's limit); metrics go ten times as many.
_BATCH = 100
#: Longest param value MLflow stores.
_MAX_PARAM = 6000


@contextmanager
def open_run(client: Any, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """A new run's id; the run ends FINISHED, or FAILED when the block raises."""
    run_id = client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def mlflow_key(key: str) -> str:
    """A key MLflow accepts (letters, digits, `_ - . / space`), at most 250 characters."""
    return _MLFLOW_KEY.sub("_", key)[:250]


def numbers(values: Mapping[str, Any], what: str) -> dict[str, float]:
    """`values` as floats; a value that is not a number is a `ConfigError` naming `what`."""
    out: dict[str, float] = {}
    for key, value in (values or {}).items():
        if isinstance(value, (int, float)):
            out[str(key)] = float(value)
        else:
            raise ConfigError(f"{what}[{key!r}] must be a number, got {value!r}")
    return out


def clean_params(flat: Mapping[str, Any], secrets: Iterable[str]) -> dict[str, str]:
    """Flat params fit to log: secret-named keys dropped, secret values redacted, keys made valid."""
    return {mlflow_key(k): v for k, v in redaction.clean_strings(flat, secrets).items()}


def log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """Every param, in batches, each value cut to the length MLflow stores."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:_MAX_PARAM]) for k, v in params.items()]
    for i in range(0, len(items), _BATCH):
        client.log_batch(run_id, params=items[i : i + _BATCH])


def metric_rows(metrics: Mapping[str, float], summary: Any = None) -> list:
    """MLflow `Metric`s stamped now: each metric at step 0, then the summary's (`summary_rows`)."""
    from mlflow.entities import Metric

    now = now_ms()
    rows = [Metric(mlflow_key(k), v, now, 0) for k, v in metrics.items()]
    return rows + summary_rows(summary, now)


def summary_rows(summary: Any, now: int) -> list:
    """Scalar summary fields as `train.<field>`; per-epoch lists as one step per epoch."""
    from mlflow.entities import Metric

    rows = []
    if not isinstance(summary, Mapping):
        return rows
    for key, value in summary.items():
        name = "train." + mlflow_key(str(key))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            rows.append(Metric(name, float(value), now, 0))
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            rows += [Metric(name, float(v), now, step) for step, v in enumerate(value, 1)]
    return rows


def log_metrics(client: Any, run_id: str, rows: list) -> None:
    """Metric rows, in batches."""
    for i in range(0, len(rows), _BATCH * 10):
        client.log_batch(run_id, metrics=rows[i : i + _BATCH * 10])


__all__ = ["clean_params", "log_metrics", "log_params", "metric_rows", "mlflow_key", "numbers", "open_run", "summary_rows"]
