"""Runs the fault suite and the topology test, and writes their figures into
docs/reliability.md (between its `<!-- results -->` markers).

Every test of `tests/test_faults.py` and `tests/test_topology.py` ends with the checker
(`tests/support/checker.py`), which appends one JSON line per run to the file named by
VOUCHERHOOK_RELIABILITY_REPORT; this command sets it, runs pytest, and renders the lines as a
table: the load, the faults injected, events sent, accepted, processed, lost, double-booked,
duplicate notifications, and the command that reproduces the row.

Run:  uv run python -m bench.reliability [--no-run REPORT.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
TESTS = ["tests/test_faults.py", "tests/test_topology.py"]
BEGIN, END = "<!-- results -->", "<!-- /results -->"


def run_tests(report: Path) -> int:
    env = {**os.environ, "VOUCHERHOOK_RELIABILITY_REPORT": str(report)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *TESTS]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def read(report: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # a test run twice: its last run counts
        latest[row["test"]] = row
    return list(latest.values())


def _faults(row: dict[str, Any]) -> str:
    faults = row.get("faults") or []
    if not faults:
        return "none"
    return "; ".join(str(fault) for fault in faults)


def _answers(row: dict[str, Any]) -> str:
    answers = row.get("answers") or {}
    return ", ".join(f"{code}: {count:,}" for code, count in sorted(answers.items()))


def _notifications(row: dict[str, Any]) -> str:
    """Duplicates, then received of planned; a delivery left `sending` by a kill is named."""
    text = (
        f"{row['duplicate_notifications']} ({row['notifications_received']:,}/"
        f"{row['notifications_planned']:,} received"
    )
    if row.get("unknown_sends"):
        text += f"; {row['unknown_sends']} left `sending` by a kill mid-send, never twice"
    return text + ")"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| test | load | faults injected | answers | sent | accepted | processed | lost "
        "| double-booked | duplicate notifications | result | reproduce |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| `{row['test'].split('::')[-1]}` | {row['load']} | {_faults(row)} | {_answers(row)} "
        f"| {row['sent']} | {row['accepted']} | {row['processed']} | {row['lost']} "
        f"| {row['double_booked']} | {_notifications(row)} | {'ok' if row['ok'] else 'FAILED'} "
        f"| `{row['reproduce']}` |"
        for row in rows
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    stamp = max(str(row.get("at", "")) for row in rows) or time.strftime("%Y-%m-%dT%H:%M:%S")
    return (
        f'Last run: {stamp} on {machine}. "answers" counts the receivers\' HTTP answers to '
        "every delivery attempt (a 503 is retried by the sender; a 200 is a duplicate).\n\n"
        + head
        + "\n".join(lines)
        + "\n\nThe checker itself is tested: `test_the_checker_sees_a_lost_event_a_double_booking_"
        "a_wrong_card_and_a_repeated_send` breaks a clean run four ways and asserts each is "
        "counted exactly once.\n"
    )


def write(doc: Path, rendered: str) -> None:
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + rendered + text[end:])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--no-run", type=Path, help="render this report file without running")
    args = parser.parse_args()
    if args.no_run:
        report, status = args.no_run, 0
    else:
        report = Path(tempfile.mkstemp(prefix="vh-reliability-", suffix=".jsonl")[1])
        status = run_tests(report)
    rows = read(report)
    if not rows:
        print(f"reliability: no results in {report}: did the tests run?", file=sys.stderr)
        return 1
    rendered = table(rows)
    write(DOC, rendered)
    print(rendered)
    print(f"written to {DOC.relative_to(ROOT)}; pytest exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
