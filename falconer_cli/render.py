"""Terminal output shared by the commands: rich tables and panels on stdout, errors on stderr.

Text from data (plans, tweets, error messages) is printed as plain `Text`, never as rich
markup, so brackets in a tweet or in a list of failing rows cannot be taken for style tags.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

console = Console(soft_wrap=False)
err_console = Console(stderr=True, soft_wrap=True)


def print_error(message: str) -> None:
    """`error: MESSAGE` in red on stderr (no wrapping, so the message stays greppable)."""
    err_console.print(Text("error: ", style="bold red") + Text(message))


def print_warning(message: str) -> None:
    """`warning: MESSAGE` in yellow on stderr: the command went on, but read this."""
    err_console.print(Text("warning: ", style="bold yellow") + Text(message))


def print_note(message: str) -> None:
    """A dim informational line on stderr, out of the way of piped stdout."""
    err_console.print(Text(message, style="dim"))


def print_plan(plan_text: str, title: str = "plan") -> None:
    """A plan's `render()` text in a panel."""
    console.print(Panel(Text(plan_text), title=title, expand=False))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *, title: str | None = None,
          max_width: int = 60, flexible: Sequence[str] = ()) -> Table:
    """A rich table of dict rows; long cells are cut to `max_width` characters. When some
    columns are `flexible` (long texts beside short values), only those wrap to fit."""
    columns = list(columns or (rows[0].keys() if rows else []))
    out = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold", no_wrap=bool(flexible) and column not in flexible)
    for row in rows:
        out.add_row(*(Text(_cell(row.get(c), max_width)) for c in columns))
    return out


def key_values(pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> Table:
    """Two-column table: what, where/value."""
    out = Table(title=title, show_header=False, box=None, pad_edge=False)
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for key, value in pairs:
        out.add_row(key, Text(_cell(value, 200)))
    return out


def _cell(value: Any, max_width: int) -> str:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    text = str(value).replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
