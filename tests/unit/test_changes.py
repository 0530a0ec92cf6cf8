"""Which stored rows a rebuild replaces (models.changes): only those that differ."""

from __future__ import annotations

from models.changes import Changes, Rows, Sequences


def test_rows_computed_exactly_as_stored_are_left_alone() -> None:
    diff = Rows({"a": (1, "x"), "b": (2, "y")})
    diff.read([("b", (2, "y"))])
    diff.read([("a", (1, "x"))])
    assert diff.changes() == Changes([], [])


def test_a_row_stored_otherwise_is_stale_and_fresh_a_missing_one_fresh_an_extra_one_stale() -> None:
    diff = Rows({"same": (1,), "changed": (2,), "missing": (3,)})
    diff.read([("same", (1,)), ("changed", (20,)), ("extra", (4,))])
    changes = diff.changes()
    assert sorted(changes.stale) == ["changed", "extra"]
    assert sorted(changes.fresh) == ["changed", "missing"]


def test_rows_without_values_compare_by_key() -> None:
    diff = Rows({("o", "e1"): (), ("o", "e2"): ()})
    diff.read([(("o", "e1"), ()), (("o", "e3"), ())])
    assert diff.changes() == Changes([("o", "e3")], [("o", "e2")])


def test_a_sequence_stays_only_when_stored_exactly_in_its_order() -> None:
    computed = {
        "same": ((1,), (2,)),
        "reordered": ((1,), (2,)),
        "shorter": ((1,), (2,)),
        "longer": ((1,),),
        "missing": ((5,),),
    }
    diff = Sequences(computed)
    stored = [
        ("same", (1,)),
        ("reordered", (2,)),
        ("shorter", (1,)),
        ("longer", (1,)),
        ("same", (2,)),
        ("reordered", (1,)),
        ("longer", (9,)),
        ("orphan", (7,)),
    ]
    diff.read(stored[:3])
    diff.read(stored[3:])
    changes = diff.changes()
    assert sorted(changes.stale) == ["longer", "orphan", "reordered", "shorter"]
    assert sorted(changes.fresh) == ["longer", "missing", "reordered", "shorter"]
