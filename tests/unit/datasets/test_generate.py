from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.core.contracts import EVENT_COLUMNS, EVENT_TYPES, ITEM_COLUMNS, RawDay
from pipelines.datasets.generate import GenerateSpec, expected_malformed, generate

SMALL = GenerateSpec(n_users=80, n_items=60, n_days=8, events_per_day=400, malformed_share=0.03,
                     seed=3)


@pytest.fixture(scope="module")
def small() -> list[RawDay]:
    return list(generate(SMALL))


@pytest.fixture(scope="module")
def default() -> list[RawDay]:
    return list(generate(GenerateSpec()))


def _day_bounds(day: RawDay) -> tuple[datetime, datetime]:
    start = datetime(day.ds.year, day.ds.month, day.ds.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _first_seen(days: list[RawDay]) -> pl.DataFrame:
    """Day on which each item first appears in an items partition."""
    rows = pl.concat([d.items.select("item_id").with_columns(ds=pl.lit(d.ds)) for d in days])
    return rows.group_by("item_id").agg(pl.col("ds").min().alias("released"))


def _flagged(day: RawDay, catalog: set[str]) -> pl.DataFrame:
    """The day's events with one boolean column per defect the generator injects."""
    start, end = _day_bounds(day)
    ev = day.events
    return ev.with_columns(
        null_user=pl.col("user_id").is_null(),
        unknown_type=~pl.col("event_type").is_in(list(EVENT_TYPES)),
        future_ts=pl.col("ts") >= end,
        unknown_item=~pl.col("item_id").is_in(list(catalog)),
        bad_rating=(pl.col("event_type") == "rate") & (pl.col("value") > 5),
        negative_dwell=(pl.col("event_type") == "view") & (pl.col("value") < 0),
    ).with_columns(
        n_defects=pl.sum_horizontal("null_user", "unknown_type", "future_ts", "unknown_item",
                                    "bad_rating", "negative_dwell"),
        early=pl.col("ts") < start,
    )


def _flag_all(days: list[RawDay]) -> list[pl.DataFrame]:
    catalog: set[str] = set()
    out = []
    for day in days:
        catalog |= set(day.items["item_id"].to_list())
        out.append(_flagged(day, catalog))
    return out


def test_same_seed_gives_identical_frames(small: list[RawDay]) -> None:
    again = list(generate(SMALL))
    assert [d.ds for d in again] == [d.ds for d in small]
    for a, b in zip(small, again, strict=True):
        assert a.events.equals(b.events)
        assert a.items.equals(b.items)


def test_different_seed_gives_different_frames(small: list[RawDay]) -> None:
    other = list(generate(GenerateSpec(**{**SMALL.__dict__, "seed": 4})))
    assert not all(a.events.equals(b.events) for a, b in zip(small, other, strict=True))


def test_frames_follow_the_raw_contract_exactly(small: list[RawDay]) -> None:
    assert [d.ds for d in small] == [SMALL.start + timedelta(days=i) for i in range(SMALL.n_days)]
    for day in small:
        assert list(day.events.schema.items()) == list(EVENT_COLUMNS.items())
        assert list(day.items.schema.items()) == list(ITEM_COLUMNS.items())
        assert day.events["ts"].is_sorted()
        assert day.events.height > 0


def test_timestamps_stay_in_their_day_unless_injected_in_the_future(small: list[RawDay]) -> None:
    for day, flagged in zip(small, _flag_all(small), strict=True):
        assert not flagged["early"].any()
        future = flagged.filter(pl.col("future_ts"))
        assert (future["n_defects"] == 1).all()  # a future ts is that row's only defect
        start, _ = _day_bounds(day)
        items_ts = day.items["updated_at"]
        assert ((items_ts >= start) & (items_ts < start + timedelta(days=1))).all()


def test_malformed_rows_have_one_defect_and_match_the_configured_share(
    small: list[RawDay],
) -> None:
    flagged = pl.concat(_flag_all(small))
    assert flagged["n_defects"].max() == 1
    duplicates = flagged.height - flagged["event_id"].n_unique()
    injected = int(flagged["n_defects"].sum()) + duplicates
    assert injected == expected_malformed(SMALL)
    assert 0.5 * SMALL.malformed_share < injected / flagged.height < 1.5 * SMALL.malformed_share
    # Every kind of defect shows up, and a re-delivered row is an identical copy.
    for kind in ("null_user", "unknown_type", "future_ts", "unknown_item", "bad_rating",
                 "negative_dwell"):
        assert flagged[kind].any(), kind
    assert duplicates > 0
    copies = flagged.drop("n_defects", "early").filter(pl.col("event_id").is_duplicated())
    assert copies.unique().height * 2 == copies.height


def test_well_formed_events_use_items_released_by_then(small: list[RawDay]) -> None:
    released = _first_seen(small)
    for day, flagged in zip(small, _flag_all(small), strict=True):
        good = flagged.filter(pl.col("n_defects") == 0)
        joined = good.join(released, on="item_id", how="left")
        assert joined["released"].null_count() == 0
        assert (joined["released"] <= day.ds).all()


def test_values_and_texts_fit_their_event_type(small: list[RawDay]) -> None:
    good = pl.concat(_flag_all(small)).filter(pl.col("n_defects") == 0)
    rates = good.filter(pl.col("event_type") == "rate")["value"]
    assert rates.is_in([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert (good.filter(pl.col("event_type") == "view")["value"] >= 0).all()
    no_value = good.filter(pl.col("event_type").is_in(["click", "add_to_cart", "purchase",
                                                       "review"]))
    assert no_value["value"].null_count() == no_value.height
    reviews = good.filter(pl.col("event_type") == "review")
    assert reviews.height > 0 and reviews["text"].null_count() == 0
    assert good.filter(pl.col("event_type") != "review")["text"].null_count() == (
        good.height - reviews.height
    )


def test_new_items_arrive_after_day_zero(small: list[RawDay]) -> None:
    released = _first_seen(small)
    assert released.height == SMALL.n_items
    new = released.filter(pl.col("released") > SMALL.start)
    assert new.height == round(SMALL.n_items * SMALL.new_item_share)
    assert new["released"].n_unique() > 1  # spread over several days
    # New items have the highest ids, as a growing catalog would.
    old = released.filter(pl.col("released") == SMALL.start)
    assert new["item_id"].min() > old["item_id"].max()


def test_catalog_updates_land_later_and_retired_items_get_no_events(
    default: list[RawDay],
) -> None:
    rows = pl.concat([d.items.with_columns(ds=pl.lit(d.ds)) for d in default])
    assert rows.height > rows["item_id"].n_unique()  # some items have update rows
    retired = rows.filter(~pl.col("available")).select("item_id", retired=pl.col("ds"))
    assert retired.height > 0
    events = pl.concat([d.events.with_columns(ds=pl.lit(d.ds)) for d in default])
    late = events.join(retired, on="item_id").filter(pl.col("ds") >= pl.col("retired"))
    assert late.height == 0


def test_items_have_topic_texts(small: list[RawDay]) -> None:
    items = pl.concat([d.items for d in small])
    assert items["category"].n_unique() == SMALL.n_topics
    assert items["title"].null_count() == 0 and items["description"].null_count() == 0
    n_tags = items["tags"].str.split("|").list.len()
    assert n_tags.min() >= 2 and n_tags.max() <= 3
    sentences = items["description"].str.count_matches(r"\.( |$)")
    assert sentences.min() >= 2 and sentences.max() <= 4


def test_popularity_is_skewed_and_activity_heavy_tailed(default: list[RawDay]) -> None:
    events = pl.concat([d.events for d in default])
    per_item = events.group_by("item_id").len().sort("len", descending=True)
    top = per_item.head(GenerateSpec().n_items // 10)["len"].sum()
    assert top / events.height > 0.4  # a uniform catalog would give 0.1
    per_user = events.drop_nulls("user_id").group_by("user_id").len()["len"]
    assert per_user.min() == 1
    assert per_user.max() > 20 * per_user.median()


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="n_topics"):
        next(generate(GenerateSpec(n_topics=13)))
    with pytest.raises(ValueError, match="malformed_share"):
        next(generate(GenerateSpec(malformed_share=0.9)))
