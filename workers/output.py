"""How the command line shows results: JSON for scripts, a table for people.

On a terminal a table is drawn by rich; ids, times and amounts are never broken across lines
(only free text such as an error wraps), so an id can be copied whole even from a narrow
window. Piped or redirected, a table is plain tab-separated lines, a header first, one row per
line: `grep`, `cut -f` and `sort` work on it, and no line is wrapped at all."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

WRAPPED = frozenset({"error", "would run", "what"})
"""Columns of free text: the only ones a terminal table wraps."""
NUMERIC = frozenset(
    {"balance", "ledger", "drift", "points_spent", "events", "attempts", "amount", "gaps"}
)
"""Columns aligned to the right."""
_NARROWEST_WRAPPED = 16


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
    if not sys.stdout.isatty():
        if title:
            print(title)
        print("\t".join(columns))
        for row in rows:
            print("\t".join(_one_line(_cell(cell, exact=True)) for cell in row))
        return
    cells = [[_cell(cell) for cell in row] for row in rows]
    longest = [max([len(c), *(len(row[n]) for row in cells)]) for n, c in enumerate(columns)]
    # Each column's padding and separator take 2; free text may wrap down to a few characters.
    needed = sum(
        (min(width, _NARROWEST_WRAPPED) if column in WRAPPED else width) + 2
        for column, width in zip(columns, longest, strict=True)
    )
    console = Console()
    if needed > console.width:
        # Too narrow for the ids side by side: a block per row, each value on its own line.
        if title:
            console.print(Text(title, style="bold"))
        for n, row in enumerate(cells):
            if n or title:
                console.print()
            _print_fields(console, list(zip(columns, row, strict=True)))
        return
    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for column, width in zip(columns, longest, strict=True):
        wrapped = column in WRAPPED
        table.add_column(
            column,
            justify="right" if column in NUMERIC else "left",
            no_wrap=not wrapped,
            overflow="fold" if wrapped else "ignore",
            min_width=None if wrapped else width,
        )
    for row in cells:
        # Stored text (event types, errors, account names) comes from payloads: a Text is
        # shown as it is, never read as rich markup.
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def print_record(fields: Sequence[tuple[str, object]]) -> None:
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name:<{width}}  {_cell(value, exact=True)}")


def _print_fields(console: Console, fields: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if not value:  # an empty field says nothing in a block
            continue
        label = f"{name:<{width}}  "
        if name in WRAPPED:
            console.print(Text.assemble((label, "bold"), value), overflow="fold")
        elif len(label) + len(value) <= console.width:
            console.print(Text.assemble((label, "bold"), value), no_wrap=True, crop=False)
        else:
            # The value on a line of its own, whole even if wider than the window (the
            # terminal shows the rest below; copied, it is one word).
            console.print(Text(name, style="bold"))
            console.print(Text(value), no_wrap=True, crop=False, overflow="ignore")


def _cell(value: object, *, exact: bool = False) -> str:
    """A value for people: a time to the second in UTC, unless `exact` (the stored value)."""
    if value is None:
        return ""
    if isinstance(value, datetime) and not exact:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return _default(value)


def _one_line(cell: str) -> str:
    """A cell of a tab-separated line: its own tabs and line breaks would start new ones."""
    return cell.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def progress() -> Progress:
    """A progress bar for a long command: on stderr, so stdout stays the result alone, and
    only on a terminal (rich would otherwise leave a stray blank line in piped output)."""
    console = Console(stderr=True)
    return Progress(transient=True, console=console, disable=not console.is_terminal)
