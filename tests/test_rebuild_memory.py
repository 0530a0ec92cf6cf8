"""A rebuild's memory does not grow with the log (docs/performance.md: "peak memory bounded
whatever the log's length"): `voucherhook rebuild`, at its defaults, over a log and over one
ten times as long (the same mix, the same cards), peaks within a few megabytes of itself.

The logs are made with SQL (`tests.support.large_log`): redemptions of every kind, reward
redemptions, rollbacks, failed and pending events and types no handler takes. The peak is the
command's own resident set at its largest, or that of a process it started if larger
(`os.wait4`'s ru_maxrss: the largest of the process and the children it waited for).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import handler_runs
from tests.support import large_log, services
from tests.support.processes import base_env, voucherhook

SMALL, LARGE = 3_000, 30_000
CARDS = 100
GROWTH_MB = 20.0
"""How much more the peak may be for the longer log. Folding all of it in memory, as the
rebuild did before it streamed, takes about 4 MB more per thousand events of this mix."""


def rebuild_peak(events: int, redis_url: str, tmp: Path) -> tuple[float, int, int]:
    """In a database of its own holding a log of `events` events: the peak RSS in MB of
    `voucherhook rebuild`, the events it folded and the events it should have."""
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
        out, err = tmp / f"{events}.out", tmp / f"{events}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            child = subprocess.Popen(
                voucherhook("rebuild", "--json"),
                env=base_env(url, redis_url),
                stdout=stdout,
                stderr=stderr,
            )
            _pid, status, usage = os.wait4(child.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, err.read_text()
        shown = json.loads(out.read_text())
        return usage.ru_maxrss / 1024, int(shown["events"]), int(folded or 0)


@pytest.mark.slow
def test_a_rebuild_peaks_within_a_fixed_margin_whatever_the_log_length(
    redis_url: str, tmp_path: Path
) -> None:
    small, small_events, small_folded = rebuild_peak(SMALL, redis_url, tmp_path)
    large, large_events, large_folded = rebuild_peak(LARGE, redis_url, tmp_path)

    assert (small_events, large_events) == (small_folded, large_folded)
    assert large_folded > 9 * small_folded  # the longer log is ten times the work
    assert large - small <= GROWTH_MB, f"peak {small:.0f} MB, then {large:.0f} MB"
