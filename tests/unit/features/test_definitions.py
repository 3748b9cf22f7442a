"""Interaction, user and item features on small event frames with hand-computed answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.core.contracts import EVENT_COLUMNS, EVENT_TYPES
from pipelines.core.settings import FeatureSettings, ValidateSettings
from tests.support.reference_features import event_weight, interactions, items, users

DS = date(2024, 5, 10)
AS_OF = datetime(2024, 5, 11, tzinfo=UTC)  # the end of ds
DAY = timedelta(days=1)
FS = FeatureSettings(half_life_days=1.0)
VS = ValidateSettings()


def _events(rows: list[tuple]) -> pl.DataFrame:
    """Clean events from ``(event_id, user_id, item_id, event_type, ts, value)`` tuples."""
    return pl.DataFrame(
        [(*r, None) for r in rows], schema=EVENT_COLUMNS, orient="row"
    )


def _pair(frame: pl.DataFrame, user: str, item: str) -> dict:
    return frame.filter((pl.col("user_id") == user) & (pl.col("item_id") == item)).row(
        0, named=True
    )


def test_decay_halves_per_half_life() -> None:
    # Three views (weight w = 1) at exactly 0, 1 and 2 days before the end of ds with a
    # half-life of 1 day: 1 + 1/2 + 1/4 = 1.75.
    ev = _events([
        ("e1", "u1", "i1", "view", AS_OF, 5.0),
        ("e2", "u1", "i1", "view", AS_OF - DAY, 5.0),
        ("e3", "u1", "i1", "view", AS_OF - 2 * DAY, 5.0),
    ])
    got = interactions(ev, AS_OF, FS, VS)
    assert got.height == 1
    assert got["confidence"].item() == pytest.approx(1.75)


def test_decay_with_event_weights() -> None:
    # purchase now 8 * 1 + click a day ago 2 * 1/2 + add_to_cart two days ago 4 * 1/4 = 10
    ev = _events([
        ("e1", "u1", "i1", "purchase", AS_OF, None),
        ("e2", "u1", "i1", "click", AS_OF - DAY, None),
        ("e3", "u1", "i1", "add_to_cart", AS_OF - 2 * DAY, None),
    ])
    assert interactions(ev, AS_OF, FS, VS)["confidence"].item() == pytest.approx(10.0)
    # With a two-day half-life: 8 + 2 * 2**-0.5 + 4 * 1/2 = 11.41421...
    slow = FeatureSettings(half_life_days=2.0)
    assert interactions(ev, AS_OF, slow, VS)["confidence"].item() == pytest.approx(
        8 + 2 * 2 ** -0.5 + 2
    )


def test_half_a_day_and_future_events() -> None:
    # 12 hours old: 0.5 ** 0.5; an event after as_of is not boosted above its weight.
    ev = _events([
        ("e1", "u1", "i1", "click", AS_OF - DAY / 2, None),
        ("e2", "u2", "i1", "click", AS_OF + DAY, None),
    ])
    got = interactions(ev, AS_OF, FS, VS)
    assert _pair(got, "u1", "i1")["confidence"] == pytest.approx(2 * 0.5 ** 0.5)
    assert _pair(got, "u2", "i1")["confidence"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        (5.0, 3.0),   # full weight: 3 * (5 - 2) / (5 - 2)
        (3.5, 1.5),   # 3 * (3.5 - 2) / 3
        (3.0, 1.0),   # 3 * (3 - 2) / 3
        (2.0, 0.3),   # neutral: 0, clipped to min 0.1 -> 3 * 0.1
        (1.0, 0.3),   # below neutral: negative, clipped to 0.1 -> 0.3
    ],
)
def test_rating_weight_mapping(rating: float, expected: float) -> None:
    ev = _events([("e1", "u1", "i1", "rate", AS_OF, rating)])
    assert interactions(ev, AS_OF, FS, VS)["confidence"].item() == pytest.approx(expected)


def test_rating_weight_settings() -> None:
    fs = FeatureSettings(half_life_days=1.0, rating_neutral=3.0, min_rating_weight=0.5,
                         event_weights={"rate": 4.0})
    ev = _events([
        ("e1", "u1", "i1", "rate", AS_OF, 4.0),   # 4 * (4 - 3) / (5 - 3) = 2
        ("e2", "u1", "i2", "rate", AS_OF, 3.0),   # 0 clipped to 0.5 -> 4 * 0.5 = 2
        ("e3", "u1", "i3", "view", AS_OF, 10.0),  # not in event_weights -> 0
    ])
    got = interactions(ev, AS_OF, fs, VS)
    assert got["confidence"].to_list() == pytest.approx([2.0, 2.0, 0.0])


def test_event_weight_expression() -> None:
    frame = pl.DataFrame({"event_type": [*EVENT_TYPES, "other"],
                          "value": [None, None, None, None, 5.0, None, None]},
                         schema={"event_type": pl.String, "value": pl.Float64})
    weights = frame.select(event_weight(FS, VS))["event_type"].to_list()
    assert weights == [1.0, 2.0, 4.0, 8.0, 3.0, 3.0, 0.0]


def _mixed() -> pl.DataFrame:
    t0 = datetime(2024, 5, 10, 8, tzinfo=UTC)
    return _events([
        ("e1", "u1", "i1", "view", t0, 30.0),
        ("e2", "u1", "i1", "click", t0 + timedelta(minutes=1), None),
        ("e3", "u1", "i1", "rate", t0 + timedelta(hours=1), 4.0),
        ("e4", "u1", "i1", "rate", t0 - DAY, 2.0),           # older rating, later in the frame
        ("e5", "u1", "i2", "purchase", t0 - 3 * DAY, None),
        ("e6", "u2", "i1", "view", t0 - 2 * DAY, 10.0),
        ("e7", "u2", "i1", "rate", t0 - 2 * DAY, 5.0),
    ])


def test_counts_last_ts_and_last_rating() -> None:
    got = interactions(_mixed(), AS_OF, FS, VS)
    assert got.select("user_id", "item_id").rows() == [("u1", "i1"), ("u1", "i2"), ("u2", "i1")]
    u1i1 = _pair(got, "u1", "i1")
    assert u1i1["n_events"] == 4
    assert (u1i1["n_view"], u1i1["n_click"], u1i1["n_rate"], u1i1["n_purchase"]) == (1, 1, 2, 0)
    assert u1i1["last_ts"] == datetime(2024, 5, 10, 9, tzinfo=UTC)
    assert u1i1["last_rating"] == 4.0  # the newest rating, not the last row
    u1i2 = _pair(got, "u1", "i2")
    assert (u1i2["n_events"], u1i2["n_purchase"], u1i2["last_rating"]) == (1, 1, None)
    assert set(got.columns) >= {f"n_{t}" for t in EVENT_TYPES}


def test_last_rating_tie_on_ts_goes_to_the_later_event_id() -> None:
    ev = _events([
        ("e9", "u1", "i1", "rate", AS_OF, 5.0),
        ("e1", "u1", "i1", "rate", AS_OF, 1.0),
    ])
    assert interactions(ev, AS_OF, FS, VS)["last_rating"].item() == 5.0


def test_users_values() -> None:
    got = users(_mixed(), AS_OF)
    assert got["user_id"].to_list() == ["u1", "u2"]
    u1, u2 = got.rows(named=True)
    # u1: 5 events on 05-10 (three), 05-09 and 05-07 -> 3 active days; ratings 4 and 2 -> 3
    assert (u1["n_events"], u1["active_days"], u1["mean_rating"]) == (5, 3, 3.0)
    assert u1["last_ts"] == datetime(2024, 5, 10, 9, tzinfo=UTC)
    assert u1["days_since_last"] == pytest.approx(15 / 24)  # 09:00 to midnight
    # u2: two events at 05-08 08:00 -> 1 day, rating 5, 2 days and 16 hours ago
    assert (u2["n_events"], u2["active_days"], u2["mean_rating"]) == (2, 1, 5.0)
    assert u2["days_since_last"] == pytest.approx(2 + 16 / 24)


def test_items_values() -> None:
    got = items(_mixed(), AS_OF, FS)
    assert got["item_id"].to_list() == ["i1", "i2"]
    i1, i2 = got.rows(named=True)
    assert (i1["n_events"], i1["n_users"], i1["n_ratings"]) == (6, 2, 3)
    assert i1["mean_rating"] == pytest.approx((4 + 2 + 5) / 3)
    assert i1["first_seen"] == datetime(2024, 5, 8, 8, tzinfo=UTC)
    # Popularity is the unweighted decay sum; ages in days from 05-11 00:00, half-life 1 day:
    # 08:00 (16 h), 08:01, 09:00 (15 h) on 05-10, 08:00 on 05-09, and twice 08:00 on 05-08.
    ages = [16 / 24, 16 / 24 - 1 / 1440, 15 / 24, 1 + 16 / 24, 2 + 16 / 24, 2 + 16 / 24]
    assert i1["popularity"] == pytest.approx(sum(0.5 ** a for a in ages))
    assert (i2["n_events"], i2["n_users"], i2["n_ratings"], i2["mean_rating"]) == (1, 1, 0, None)
    assert i2["popularity"] == pytest.approx(0.5 ** (3 + 16 / 24))


def test_results_do_not_depend_on_row_order() -> None:
    ev = _mixed()
    shuffled = ev.sample(fraction=1.0, shuffle=True, seed=7)
    reversed_ = ev.reverse()
    for other in (shuffled, reversed_):
        assert_frame_equal(interactions(ev, AS_OF, FS, VS), interactions(other, AS_OF, FS, VS))
        assert_frame_equal(users(ev, AS_OF), users(other, AS_OF))
        assert_frame_equal(items(ev, AS_OF, FS), items(other, AS_OF, FS))


def test_same_inputs_same_numbers() -> None:
    # Ages come from as_of, never from the wall clock.
    ev = _mixed()
    assert_frame_equal(interactions(ev, AS_OF, FS, VS), interactions(ev, AS_OF, FS, VS),
                       check_exact=True)
    later = interactions(ev, AS_OF + DAY, FS, VS)
    assert later["confidence"].to_list() == pytest.approx(
        [c / 2 for c in interactions(ev, AS_OF, FS, VS)["confidence"].to_list()]
    )
