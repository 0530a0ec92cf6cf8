"""What the commands show a person: on a terminal, tables whose ids and times are never broken
across lines, however narrow the window, and amounts with their unit; piped, one plain line per
row; and times given as ISO 8601 or as a time ago. Real `voucherhook` processes on a real
pseudo-terminal, over an embedded database the workers' own code filled."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from models.db import schema
from models.db.engine import make_engine
from models.db.tables import events
from tests.support.processes import base_env, voucherhook
from tests.support.processing import make_processor, store
from tests.support.terminal import on_terminal
from tests.unit import recorded
from tests.unit.recorded import REDEMPTION, REWARD_REDEMPTION

SEED_CARD = "v_p7NP2qmQaMXsNHzb9ujPVjqgDJzJ2ccQ"
NOW = datetime.now(UTC)
# How long ago each event arrived: an old one, one 40 minutes ago, one a moment ago.
AGES = {"old": timedelta(hours=3), "recent": timedelta(minutes=40), "new": timedelta(0)}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A redemption (3 h ago), a reward redemption (40 min ago) and an event that failed (now),
    processed; the environment of a command that reads them."""
    path: Path = tmp_path_factory.mktemp("terminal") / "voucherhook.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    schema.upgrade(engine)
    bad = recorded.redemption("r_terminal_bad", order_id="ord_terminal_bad")
    # A child of a stack that names neither voucher nor tier: the ledger cannot book it.
    bad["voucher"] = bad["promotion_tier"] = None
    bad["redemption"]["redemption"] = "r_terminal_parent"
    ids = {
        "old": store(engine, REDEMPTION, recorded.seed_redemption()),
        "recent": store(engine, REWARD_REDEMPTION, recorded.seed_reward_redemption()),
        "new": store(engine, REDEMPTION, bad),
    }
    make_processor(engine).process(list(ids.values()))
    with engine.begin() as conn:
        for name, age in AGES.items():
            conn.execute(
                update(events).where(events.c.id == ids[name]).values(received_at=NOW - age)
            )
    engine.dispose()
    yield {"env": base_env(url, None), "ids": ids}


def piped(env: dict[str, str], *args: str) -> list[list[str]]:
    result = subprocess.run(voucherhook(*args), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


@pytest.mark.parametrize("columns", [50, 90, 220])
def test_events_list_on_a_terminal_never_breaks_an_id_or_a_time(
    stored: dict[str, Any], columns: int
) -> None:
    status, shown = on_terminal(voucherhook("events", "list"), stored["env"], columns)

    assert status == 0, shown
    lines = shown.splitlines()
    for event_id in stored["ids"].values():
        assert any(event_id in line for line in lines), (event_id, shown)
    for age in AGES.values():
        at = (NOW - age).strftime("%Y-%m-%d %H:%M:%S")
        assert any(at in line for line in lines), (at, shown)
    # Wider than the window only where one id alone is: the terminal shows its end below.
    assert all(len(line) <= columns or line in stored["ids"].values() for line in lines), shown
    if columns == 220:  # wide enough: one table, a row per event
        assert [line.split() for line in lines if "received_at" in line] == [
            ["received_at", "id", "type", "status", "attempts", "error"]
        ]
    else:  # too narrow for the ids side by side: a block per event
        assert sum(line.split()[:1] == ["id"] for line in lines) == 3, shown


def test_a_long_error_wraps_on_a_terminal_and_stays_one_line_when_piped(
    stored: dict[str, Any],
) -> None:
    args = ("events", "list", "--status", "failed")
    _, shown = on_terminal(voucherhook(*args), stored["env"], 150)
    [[_, event_id, _, status, _, error]] = piped(stored["env"], *args)[1:]

    assert (event_id, status) == (stored["ids"]["new"], "failed")
    assert error.startswith("ledger: ") and len(error) > 40
    # On the terminal the error column is narrower than the error: it goes on below.
    first = next(line for line in shown.splitlines() if event_id in line)
    assert error not in first and error[:10] in first


def test_ledger_balances_show_money_with_its_currency_and_points_as_points(
    stored: dict[str, Any],
) -> None:
    status, shown = on_terminal(voucherhook("ledger", "balances"), stored["env"], 100)

    assert status == 0, shown
    words = [line.split() for line in shown.splitlines() if line.strip()]
    assert words[0] == ["account", "balance"] and set(words[1][0]) == {"─"}, shown
    rows = {account: " ".join(balance) for account, *balance in words[2:]}
    assert rows["sales"] == "-70.00 USD"
    assert rows[f"loyalty:card:{SEED_CARD}"] == "-100 points"


def test_a_loyalty_card_s_balances_are_points(stored: dict[str, Any]) -> None:
    status, shown = on_terminal(voucherhook("loyalty", SEED_CARD), stored["env"], 100)

    assert status == 0, shown
    lines = [line.split() for line in shown.splitlines() if line.strip()]
    fields = {name: " ".join(value) for name, *value in lines}
    assert fields["balance"] == "70 points"
    assert fields["points_spent"] == "100 points"
    assert fields["drift"].endswith(" points")


def test_since_and_until_take_a_time_ago_or_iso_8601(stored: dict[str, Any]) -> None:
    env, ids = stored["env"], stored["ids"]

    def listed(*args: str) -> set[str]:
        return {row[1] for row in piped(env, "events", "list", *args)[1:]}

    assert listed("--since", "2h") == {ids["recent"], ids["new"]}
    assert listed("--since", "2h", "--until", "30m") == {ids["recent"]}
    assert listed("--until", "1h30m") == {ids["old"]}
    assert listed("--since", "1d", "--until", (NOW - timedelta(hours=1)).isoformat()) == {
        ids["old"]
    }
    assert listed("--since", (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")) == {
        ids["recent"],
        ids["new"],
    }
    dry_run = piped(env, "replay", "--since", "2h", "--until", "30m", "--dry-run")
    assert dry_run[0] == ["1 event(s) selected (dry run: nothing changed)"]
    assert [row[0] for row in dry_run[2:]] == [ids["recent"]]


def test_a_time_that_is_neither_says_what_to_give(stored: dict[str, Any]) -> None:
    result = subprocess.run(
        voucherhook("events", "list", "--until", "an hour ago"),
        env=stored["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr == (
        "voucherhook: argument --until: 'an hour ago' is not an ISO 8601 date or time nor a "
        "time ago: give 2024-05-13, 2024-05-13T12:00:00Z, or a time ago such as 30m, 1h, 2d "
        "(see `voucherhook events list --help`)\n"
    )
