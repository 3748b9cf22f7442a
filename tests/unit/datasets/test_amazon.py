"""The Amazon Scientific set as raw days: made-up days aligned at the end, cold items, catalog."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.core.contracts import EVENT_COLUMNS, ITEM_COLUMNS, RawDay
from pipelines.datasets.amazon import (
    ColdSummary,
    cold_items,
    cold_summary,
    load_amazon_interactions,
    load_amazon_items,
    to_raw_days,
)
from tests.support.workspace import shared_dataset

END = date(2026, 10, 31)
TINY_ITEMS = {
    "0": {"title": "Beaker", "description": "Glass, 250 ml.", "brand": "Pyrex",
          "categories": "Industrial & Scientific,Lab,Glassware"},
    "1": {"title": "Caliper", "description": "", "brand": "Mitutoyo",
          "categories": "Industrial & Scientific, Measuring"},
    "2": {"title": "Gloves", "description": "Nitrile.", "brand": "", "categories": ""},
    "3": {"title": "Pipette", "description": "1000 ul.", "brand": "Eppendorf",
          "categories": "Industrial & Scientific,Lab"},
}
# u2's four items reach back furthest: the days are END - 3 .. END.
TINY_SEQUENCES = {"0": [0, 1, 2], "1": [2, 0], "2": [1, 3, 0, 2]}


def _write_folder(folder: Path, sequences: object = None, items: object = None) -> Path:
    folder.mkdir()
    (folder / "Scientific.item.json").write_text(json.dumps(items or TINY_ITEMS))
    (folder / "Scientific.inter.json").write_text(json.dumps(sequences or TINY_SEQUENCES))
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _write_folder(tmp_path / "tiny")


def _noon(day: date, user: int) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC) + timedelta(seconds=user)


def _all_events(days: list[RawDay]) -> pl.DataFrame:
    return pl.concat([d.events.with_columns(ds=pl.lit(d.ds)) for d in days])


def _check_contract(days: list[RawDay]) -> None:
    assert [d.ds for d in days] == [days[0].ds + timedelta(days=i) for i in range(len(days))]
    for day in days:
        assert list(day.events.schema.items()) == list(EVENT_COLUMNS.items())
        assert list(day.items.schema.items()) == list(ITEM_COLUMNS.items())
        assert (day.events["ts"].dt.date() == day.ds).all()
        assert day.events["ts"].is_sorted()
    assert all(d.items.is_empty() for d in days[1:])


def test_interactions_keep_each_users_order(tiny: Path) -> None:
    got = load_amazon_interactions(tiny)
    assert got.rows() == [
        ("u0", "a0", 0, 3), ("u0", "a1", 1, 3), ("u0", "a2", 2, 3),
        ("u1", "a2", 0, 2), ("u1", "a0", 1, 2),
        ("u2", "a1", 0, 4), ("u2", "a3", 1, 4), ("u2", "a0", 2, 4), ("u2", "a2", 3, 4),
    ]


def test_days_are_aligned_at_the_end(tiny: Path) -> None:
    days = list(to_raw_days(tiny, END))
    _check_contract(days)
    assert [d.ds for d in days] == [END - timedelta(days=n) for n in (3, 2, 1, 0)]
    rows = [d.events.select("event_id", "user_id", "item_id", "ts").rows() for d in days]
    assert rows == [
        [("e2-0", "u2", "a1", _noon(END - timedelta(days=3), 2))],
        [("e0-0", "u0", "a0", _noon(END - timedelta(days=2), 0)),
         ("e2-1", "u2", "a3", _noon(END - timedelta(days=2), 2))],
        [("e0-1", "u0", "a1", _noon(END - timedelta(days=1), 0)),
         ("e1-0", "u1", "a2", _noon(END - timedelta(days=1), 1)),
         ("e2-2", "u2", "a0", _noon(END - timedelta(days=1), 2))],
        [("e0-2", "u0", "a2", _noon(END, 0)), ("e1-1", "u1", "a0", _noon(END, 1)),
         ("e2-3", "u2", "a2", _noon(END, 2))],
    ]
    events = _all_events(days)
    assert (events["event_type"] == "purchase").all()
    assert events["value"].null_count() == events["text"].null_count() == events.height


def test_last_day_holds_each_users_last_item(tiny: Path) -> None:
    """Holding out the last day is leave-last-one-out."""
    last = list(to_raw_days(tiny, END))[-1].events
    interactions = load_amazon_interactions(tiny)
    expected = interactions.filter(pl.col("position") == pl.col("length") - 1)
    assert last.select("user_id", "item_id").rows() == expected.select(
        "user_id", "item_id").rows()


def test_time_order_is_sequence_order(tiny: Path) -> None:
    events = _all_events(list(to_raw_days(tiny, END))).sort("ts")
    positions = events.select("user_id", pos=pl.col("event_id").str.split("-").list.last()
                              .cast(pl.Int64))
    assert positions.group_by("user_id").agg(ok=pl.col("pos").diff().drop_nulls().min() > 0)[
        "ok"].all()


def test_whole_catalog_lands_on_the_first_day(tiny: Path) -> None:
    days = list(to_raw_days(tiny, END))
    first = END - timedelta(days=3)
    expected = pl.DataFrame({
        "item_id": ["a0", "a1", "a2", "a3"],
        "title": ["Beaker", "Caliper", "Gloves", "Pipette"],
        "description": ["Glass, 250 ml.", None, "Nitrile.", "1000 ul."],
        "category": ["Industrial & Scientific|Lab|Glassware", "Industrial & Scientific|Measuring",
                     None, "Industrial & Scientific|Lab"],
        "tags": ["Pyrex", "Mitutoyo", None, "Eppendorf"],
        "available": [True] * 4,
        "updated_at": [datetime(first.year, first.month, first.day, tzinfo=UTC)] * 4,
    }, schema=ITEM_COLUMNS)
    assert_frame_equal(days[0].items, expected)
    assert_frame_equal(days[0].items.drop("available", "updated_at"), load_amazon_items(tiny))


def test_cold_events_before_the_cut_off_are_dropped(tiny: Path) -> None:
    cold_from = END
    days = list(to_raw_days(tiny, END, cold={"a2"}, cold_from=cold_from))
    _check_contract(days)
    events = _all_events(days)
    assert events.filter(pl.col("item_id") == "a2")["event_id"].to_list() == ["e0-2", "e2-3"]
    assert "e1-0" not in events["event_id"].to_list()  # u1's a2, the day before the cut-off
    assert events.height == 9 - 1
    assert days[0].items.height == 4  # cold items stay in the catalog
    summary = cold_summary(load_amazon_interactions(tiny), END, {"a2"}, cold_from)
    assert summary == ColdSummary(items=1, dropped=1, kept=2)


def test_a_day_emptied_by_cold_items_is_still_written(tiny: Path) -> None:
    days = list(to_raw_days(tiny, END, cold={"a1"}, cold_from=END))
    assert days[0].ds == END - timedelta(days=3)
    assert days[0].events.is_empty() and days[0].items.height == 4
    _check_contract(days)


def test_no_cold_items_drops_nothing(tiny: Path) -> None:
    assert _all_events(list(to_raw_days(tiny, END))).height == 9
    assert cold_summary(load_amazon_interactions(tiny), END, set(), None) == ColdSummary(0, 0, 0)


def test_cold_items_need_a_cut_off(tiny: Path) -> None:
    with pytest.raises(ValueError, match="cold_from"):
        list(to_raw_days(tiny, END, cold={"a0"}))


def test_cold_items_are_a_seeded_exact_share() -> None:
    ids = [f"a{i}" for i in range(1_000)]
    picked = cold_items(ids, 0.1, seed=3)
    assert len(picked) == 100 and picked <= set(ids)
    assert cold_items(reversed(ids), 0.1, seed=3) == picked
    assert cold_items(ids, 0.1, seed=4) != picked
    assert cold_items(ids, 0.0, seed=3) == set() and cold_items(ids, 1.0, seed=3) == set(ids)
    # Pinned: the pick must not depend on the process (Python's hash() is salted per process).
    assert cold_items([f"a{i}" for i in range(10)], 0.3, seed=1) == {"a4", "a5", "a8"}
    with pytest.raises(ValueError, match="share"):
        cold_items(ids, 1.5, seed=3)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Scientific\.inter\.json: not found"):
        load_amazon_interactions(tmp_path)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ("[[0, 1]]", "expected an object"),
    ('{"0": [0, "1"]}', "user 0 must map"),
    ('{"x": [0]}', "user key 'x'"),
])
def test_malformed_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "Scientific.inter.json").write_text(content)
    with pytest.raises(ValueError, match=rf"Scientific\.inter\.json: .*{message}|{message}"):
        load_amazon_interactions(tmp_path)


def test_items_missing_from_the_catalog_are_refused(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "unknown", sequences={"0": [0, 7]})
    with pytest.raises(ValueError, match=r"1 item\(s\) not in Scientific\.item\.json, e\.g\. a7"):
        list(to_raw_days(folder, END))


@pytest.fixture(scope="module")
def scientific() -> Path:
    return shared_dataset("amazon-scientific")


@pytest.fixture(scope="module")
def scientific_days(scientific: Path) -> list[RawDay]:
    return list(to_raw_days(scientific, END))


def test_scientific_counts(scientific: Path, scientific_days: list[RawDay]) -> None:
    interactions = load_amazon_interactions(scientific)
    assert interactions.height == 58_492
    assert interactions["user_id"].n_unique() == 8_317
    days = scientific_days
    _check_contract(days)
    assert len(days) == 78  # the longest sequence
    events = _all_events(days)
    assert events.height == 58_492 and events["event_id"].is_unique().all()
    assert days[0].items.height == 4_344
    assert set(events["item_id"].unique()) == set(days[0].items["item_id"])
    # Every sequence has at least 5 items, so each of the last 5 days has every user once.
    assert [d.events.height for d in days[-5:]] == [8_317] * 5
    assert days[0].events.height == 1


def test_scientific_cold_split(scientific: Path) -> None:
    items = load_amazon_items(scientific)
    cold = cold_items(items["item_id"], 0.1, seed=0)
    cold_from = END - timedelta(days=1)
    days = list(to_raw_days(scientific, END, cold=cold, cold_from=cold_from))
    events = _all_events(days)
    summary = cold_summary(load_amazon_interactions(scientific), END, cold, cold_from)
    assert len(cold) == 434 and summary.items == 434
    assert events.height == 58_492 - summary.dropped
    cold_events = events.filter(pl.col("item_id").is_in(sorted(cold)))
    assert cold_events.height == summary.kept
    assert (cold_events["ds"] >= cold_from).all()
