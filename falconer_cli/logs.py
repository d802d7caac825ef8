"""Terminal logging while a flow runs in the CLI's process.

Prefect logs a failed task's exception with its traceback. For Falconer's own errors (a
missing column, an unknown model) the message says everything, so on the terminal the
traceback is dropped; the Prefect API still receives the full record for the UI, because its
handler formats the record before the terminal's handler sees it.
"""

from __future__ import annotations

import logging


class HideUserErrorTracebacks(logging.Filter):
    """Strip the traceback from records whose exception is a `FalconerError` or a full disk or
    refused write (the CLI ends with one line saying where and what to do)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from falconer_core.disk import disk_problem
        from falconer_core.errors import FalconerError

        error = record.exc_info[1] if record.exc_info else None
        if error is not None and (isinstance(error, FalconerError) or disk_problem(error) is not None):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_user_error_tracebacks() -> None:
    """Install the filter on the terminal handlers of Prefect's logging (once per process)."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, HideUserErrorTracebacks) for f in handler.filters):
            handler.addFilter(HideUserErrorTracebacks())
