"""How the command line shows results: JSON for scripts, a readable table for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def utc(value: datetime | None) -> str | None:
    """A stored time for output, in ISO 8601 (stored times are read in UTC:
    `models.db.tables.UtcDateTime`)."""
    return value.isoformat() if value is not None else None


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=_default, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None
) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        numeric = column in ("balance", "points_spent", "events", "attempts", "amount")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        # Stored text (event types, errors, account names) comes from payloads: a Text is
        # shown as it is, never read as rich markup.
        table.add_row(*(Text("" if cell is None else _default(cell)) for cell in row))
    Console(width=max(Console().width, 120)).print(table)


def print_record(fields: Sequence[tuple[str, object]]) -> None:
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        shown = "" if value is None else _default(value)
        print(f"{name:<{width}}  {shown}")


def progress() -> Progress:
    """A progress bar for a long command: on stderr, so stdout stays the result alone, and
    only on a terminal (rich would otherwise leave a stray blank line in piped output)."""
    console = Console(stderr=True)
    return Progress(transient=True, console=console, disable=not console.is_terminal)
