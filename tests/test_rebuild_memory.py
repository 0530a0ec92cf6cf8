"""A rebuild's memory does not grow with the log (docs/performance.md: "peak memory bounded
whatever the log's length"): `voucherhook rebuild`, at its defaults, over a log and over one
ten times as long (the same mix, the same cards), peaks within a few megabytes of itself.

The logs are made with SQL (`tests.support.large_log`): redemptions of every kind, reward
redemptions, rollbacks, failed and pending events and types no handler takes. The peak is the
command's own resident set at its largest, or that of a process it started if larger, and
none of this test run's (`tests.support.peak_rss`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import handler_runs
from tests.support import large_log, peak_rss, services
from tests.support.processes import base_env, voucherhook

SMALL, LARGE = 3_000, 30_000
CARDS = 100
PROCESSES = (1, 2)
"""Folding here, and by processes it starts: the default picks the first for a log under
`workers.rebuild.PARALLEL_FROM` sequences and the second above, so each is measured at both
sizes (comparing one size folded here with the other folded by several processes would
measure the difference of the two)."""
GROWTH_MB = 20.0
"""How much more the peak may be for the longer log. Folding all of it in memory, as the
rebuild did before it streamed, takes about 4 MB more per thousand events of this mix."""


def rebuild_peaks(
    events: int, redis_url: str, tmp: Path
) -> tuple[dict[int, float], dict[int, int], int]:
    """In a database of its own holding a log of `events` events, `voucherhook rebuild` with
    each of `PROCESSES`: its peak RSS in MB and the events it folded; and the events it
    should have folded."""
    with services.postgres_database() as url:
        engine = make_engine(url)
        schema.upgrade(engine)
        with engine.begin() as conn:
            large_log.fill(conn, large_log.base_for(events), 1, events, CARDS)
            large_log.analyze(conn)
            folded = conn.scalar(
                select(func.count(func.distinct(handler_runs.c.event_id))).where(
                    handler_runs.c.handler.in_(("ledger", "loyalty")),
                    handler_runs.c.status == "done",
                )
            )
        engine.dispose()
        peaks, shown = {}, {}
        for processes in PROCESSES:
            peaks[processes], shown[processes] = _peak(url, redis_url, tmp, processes)
        return peaks, shown, int(folded or 0)


def _peak(url: str, redis_url: str, tmp: Path, processes: int) -> tuple[float, int]:
    out, err = tmp / "rebuild.out", tmp / "rebuild.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        measured = peak_rss.run(
            voucherhook("rebuild", "--json", "--processes", str(processes)),
            env=base_env(url, redis_url),
            stdout=stdout,
            stderr=stderr,
        )
    assert measured.returncode == 0, err.read_text()
    return measured.peak_mb, int(json.loads(out.read_text())["events"])


@pytest.mark.slow
def test_a_rebuild_peaks_within_a_fixed_margin_whatever_the_log_length(
    redis_url: str, tmp_path: Path
) -> None:
    small, small_events, small_folded = rebuild_peaks(SMALL, redis_url, tmp_path)
    large, large_events, large_folded = rebuild_peaks(LARGE, redis_url, tmp_path)

    for processes in PROCESSES:
        assert small_events[processes] == small_folded, processes
        assert large_events[processes] == large_folded, processes
    assert large_folded > 9 * small_folded  # the longer log is ten times the work
    for processes in PROCESSES:
        growth = large[processes] - small[processes]
        assert growth <= GROWTH_MB, (
            f"{processes} process(es): peak {small[processes]:.0f} MB, "
            f"then {large[processes]:.0f} MB"
        )
