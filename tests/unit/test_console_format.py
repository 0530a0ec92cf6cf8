"""The console's pure rules: amounts, ages, bodies, the events filter, the activity series and
the SVG charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from models.charts import Series, line_chart
from models.console import (
    EventFilter,
    FilterError,
    Window,
    activity_series,
    age,
    pretty_body,
    read_cursor,
    read_filter,
    window_labels,
)


def test_ages_read_as_a_person_says_them() -> None:
    assert [age(s) for s in (0, 59, 60, 3599, 3600, 7500, 172_800, 200_000)] == [
        "0 s", "59 s", "1 min", "59 min", "1 h", "2 h 5 min", "2 d", "2 d 7 h",
    ]  # fmt: skip


def test_a_json_body_is_indented_in_its_own_key_order_and_anything_else_is_shown_as_is() -> None:
    text, is_json = pretty_body(b'{"b":1,"a":{"c":"\xc3\xa9"}}')
    assert is_json and text == '{\n  "b": 1,\n  "a": {\n    "c": "\u00e9"\n  }\n}'
    assert pretty_body(b"not json \xff") == ("not json \ufffd", False)


def test_the_filter_reads_its_query_parameters_and_names_a_malformed_one() -> None:
    chosen = read_filter(
        {"q": " SUMMER-1 ", "type": "redemption.succeeded", "status": "failed",
         "since": "2026-12-02T09:00", "until": "2026-12-02T10:00+01:00"}
    )  # fmt: skip
    assert chosen == EventFilter(
        q="SUMMER-1",
        type="redemption.succeeded",
        status="failed",
        since=datetime(2026, 12, 2, 9, tzinfo=UTC),
        until=datetime(2026, 12, 2, 9, tzinfo=UTC),
    )
    assert not chosen.replayable  # a search is not a replay's selection
    assert chosen.without_search().replayable
    assert read_filter({}) == EventFilter() and not EventFilter().replayable
    for params, named in [
        ({"status": "lost"}, "status 'lost'"),
        ({"since": "yesterday"}, "since 'yesterday'"),
        ({"until": "9" * 50}, "until is not a date"),
        ({"q": "x" * 201}, "q is 201 characters"),
    ]:
        with pytest.raises(FilterError, match=named):
            read_filter(params)
    with pytest.raises(FilterError, match="before must be a sequence number"):
        read_cursor("-1", "before")
    assert read_cursor("42", "before") == 42 and read_cursor(None, "before") is None


def test_the_filter_round_trips_through_its_query_string() -> None:
    chosen = EventFilter(status="failed", since=datetime(2026, 12, 2, 9, tzinfo=UTC))
    assert (
        chosen.query(before=7) == "status=failed&since=2026-12-02T09%3A00%3A00%2B00%3A00&before=7"
    )
    assert read_filter(dict(p.split("=") for p in ["status=failed"])).status == "failed"
    assert chosen.describe() == "failed events received since 2026-12-02T09:00:00+00:00"


def test_activity_puts_each_count_in_its_minute_and_quiet_minutes_at_zero() -> None:
    end = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    window = Window(end, 60, 3)  # 11:57-11:58, 11:58-11:59, 11:59-12:00
    first = window.first_bucket()
    assert datetime.fromtimestamp(first * 60, UTC) == end - timedelta(minutes=2)
    series, totals = activity_series(
        [(first, "processed", 4), (first, "failed", 1), (first + 2, "pending", 2),
         (first - 5, "processed", 99)],  # outside the window
        window,
    )  # fmt: skip
    assert {s.name: [y for _, y in s.points] for s in series} == {
        "received": [5, 0, 2],
        "processed": [4, 0, 0],
        "failed": [1, 0, 0],
    }
    assert totals == {"received": 7, "processed": 4, "failed": 1}
    assert [label for _, label in window_labels(window, 2)] == ["11:58", "11:59", "12:00"]


def test_a_chart_is_well_formed_svg_with_its_labels_escaped() -> None:
    svg = line_chart(
        [Series("<b>received</b>", [(0, 3), (1, 5)], "received"),
         Series("balance", [(0, -2), (1, 4)], "balance", step=True)],
        x_range=(0, 1),
        x_labels=[(0, "09:00"), (1, "10:00 & later")],
        title='events "per" minute',
    )  # fmt: skip
    root = ET.fromstring(svg)  # parses: nothing unescaped got in
    texts = [node.text for node in root.iter() if node.text]
    assert "10:00 & later" in texts and "<b>received</b> (max 5)" in texts
    paths = [node.get("d") for node in root.iter("{http://www.w3.org/2000/svg}path")]
    assert paths[0] and paths[0].startswith("M") and "L" in paths[0]
    assert paths[1] and "H" in paths[1] and "V" in paths[1]  # steps
    assert root.get("viewBox") is not None and root.get("width") is None  # scales
