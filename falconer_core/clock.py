"""The one clock: every timestamp Falconer records (store rows, registry metrics) is timezone-aware
UTC, read here so that a test or a caller can see where time comes from."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def now_ms() -> int:
    """The current time as whole milliseconds since the epoch (MLflow's timestamps)."""
    return int(now().timestamp() * 1000)


__all__ = ["now", "now_ms"]
