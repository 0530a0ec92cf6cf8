"""Label values come from a fixed set whatever a sender chose."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models import metric_labels
from models.routing import HANDLERS


def test_a_type_with_handlers_is_its_own_label_and_any_other_is_other() -> None:
    assert metric_labels.event_type("redemption.succeeded") == "redemption.succeeded"
    assert metric_labels.event_type("voucher.deleted") == "other"
    assert metric_labels.event_type(None) == "other"
    assert metric_labels.event_type("") == "other"
    assert set(metric_labels.EVENT_TYPES) == {*HANDLERS, "other"}


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text()),
            st.sampled_from(["pending", "failed"]),
            st.integers(0, 10**6),
        )
    )
)
def test_folded_counts_keep_every_event_under_a_known_label(
    counts: list[tuple[str | None, str, int]],
) -> None:
    folded = metric_labels.fold_counts(counts)
    assert {label for label, _status in folded} <= set(metric_labels.EVENT_TYPES)
    assert sum(folded.values()) == sum(count for _type, _status, count in counts)
