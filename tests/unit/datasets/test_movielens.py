from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.core.contracts import EVENT_COLUMNS, ITEM_COLUMNS, RawDay
from pipelines.datasets.movielens import (
    MovieLens,
    MovieLensLayoutError,
    load_movielens,
    to_raw_days,
)
from tests.support.workspace import shared_dataset


def _load(name: str) -> tuple[MovieLens, list[RawDay]]:
    ml = load_movielens(shared_dataset(name))
    return ml, list(to_raw_days(ml))


@pytest.fixture(scope="module")
def ml100k() -> tuple[MovieLens, list[RawDay]]:
    return _load("ml-100k")


@pytest.fixture(scope="module")
def latest_small() -> tuple[MovieLens, list[RawDay]]:
    return _load("ml-latest-small")


def _all_events(days: list[RawDay]) -> pl.DataFrame:
    return pl.concat([d.events.with_columns(ds=pl.lit(d.ds)) for d in days])


def _all_items(days: list[RawDay]) -> pl.DataFrame:
    return pl.concat([d.items.with_columns(ds=pl.lit(d.ds)) for d in days])


def _check_contract(days: list[RawDay]) -> None:
    assert [d.ds for d in days] == sorted({d.ds for d in days})
    for day in days:
        assert list(day.events.schema.items()) == list(EVENT_COLUMNS.items())
        assert list(day.items.schema.items()) == list(ITEM_COLUMNS.items())
        assert day.events.height > 0
        assert (day.events["ts"].dt.date() == day.ds).all()
        assert (day.items["updated_at"].dt.date() <= day.ds).all()
        assert day.items["item_id"].is_unique().all()


def _check_catalog_precedes_events(days: list[RawDay]) -> None:
    entered = _all_items(days).group_by("item_id").agg(entered=pl.col("ds").min())
    joined = _all_events(days).join(entered, on="item_id", how="left")
    assert joined["entered"].null_count() == 0
    assert (joined["entered"] <= joined["ds"]).all()


def test_ml100k_all_ratings_become_rate_events(ml100k: tuple[MovieLens, list[RawDay]]) -> None:
    _, days = ml100k
    _check_contract(days)
    events = _all_events(days)
    assert events.height == 100_000
    assert events["user_id"].n_unique() == 943
    assert events["item_id"].n_unique() == 1_682
    assert events["event_id"].is_unique().all()
    assert (events["event_type"] == "rate").all()
    assert events["value"].is_in([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert events["text"].null_count() == events.height
    _check_catalog_precedes_events(days)
    items = _all_items(days)
    assert items.height == 1_682  # no tags in ml-100k, so one row per movie
    toy_story = items.filter(pl.col("item_id") == "1").row(0, named=True)
    assert toy_story["title"] == "Toy Story (1995)"
    assert toy_story["tags"] == "Animation|Children's|Comedy"
    assert toy_story["category"] == "Animation"


def test_latest_small_counts_and_tags(latest_small: tuple[MovieLens, list[RawDay]]) -> None:
    ml, days = latest_small
    _check_contract(days)
    events = _all_events(days)
    assert events.height == 100_836
    assert events["user_id"].n_unique() == 610
    assert events["value"].is_in([x / 2 for x in range(1, 11)]).all()
    items = _all_items(days)
    assert items["item_id"].n_unique() == 9_724
    _check_catalog_precedes_events(days)
    latest = items.sort("ds").group_by("item_id").last()
    step_brothers = latest.filter(pl.col("item_id") == "60756")["tags"].item().split("|")
    assert {"funny", "Highly quotable", "will ferrell"} <= set(step_brothers)
    assert items.height > 9_724  # tags applied after a movie's first day land as updates


def test_latest_small_never_leaks_future_tags(
    latest_small: tuple[MovieLens, list[RawDay]],
) -> None:
    ml, days = latest_small
    first_applied = ml.tags.group_by("item_id", key=pl.col("tag").str.to_lowercase()).agg(
        applied=pl.col("ts").min().dt.date()
    )
    genres = ml.movies.select("item_id", genre_keys=pl.col("genres").str.to_lowercase())
    words = (
        _all_items(days).select("item_id", "ds", key=pl.col("tags").str.split("|"))
        .explode("key").drop_nulls("key").with_columns(pl.col("key").str.to_lowercase())
        .join(genres, on="item_id")
        .filter(~pl.col("genre_keys").str.split("|").list.contains(pl.col("key")))
        .join(first_applied, on=["item_id", "key"], how="left")
    )
    assert words.height > 3_000
    assert words["applied"].null_count() == 0
    assert (words["applied"] <= words["ds"]).all()


def _write_100k(folder: Path) -> None:
    folder.mkdir()
    ratings = [(1, 10, 4, 881250949), (2, 10, 5, 881254549), (1, 20, 3, 881423749)]
    (folder / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in ratings))
    flags = {10: {1, 5}, 20: {8}, 30: {0}}  # Action+Comedy, Drama, unknown
    lines = [
        f"{item}|{title}|01-Jan-1995||http://example.org/{item}|"
        + "|".join("1" if g in flags[item] else "0" for g in range(19))
        for item, title in ((10, "Alpha (1995)"), (20, "Bête, La (1996)"), (30, "Gamma (1997)"))
    ]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_tiny_ml100k_folder_gives_exact_days(tmp_path: Path) -> None:
    _write_100k(tmp_path / "tiny")
    days = list(to_raw_days(load_movielens(tmp_path / "tiny")))
    assert [d.ds for d in days] == [date(1997, 12, 4), date(1997, 12, 6)]
    expected_events = [
        pl.DataFrame({
            "event_id": ["ml-1-10-881250949", "ml-2-10-881254549"], "user_id": ["1", "2"],
            "item_id": ["10", "10"], "event_type": ["rate", "rate"],
            "ts": [_ts("1997-12-04T15:55:49"), _ts("1997-12-04T16:55:49")],
            "value": [4.0, 5.0], "text": [None, None],
        }, schema=EVENT_COLUMNS),
        pl.DataFrame({
            "event_id": ["ml-1-20-881423749"], "user_id": ["1"], "item_id": ["20"],
            "event_type": ["rate"], "ts": [_ts("1997-12-06T15:55:49")], "value": [3.0],
            "text": [None],
        }, schema=EVENT_COLUMNS),
    ]
    expected_items = [
        pl.DataFrame({
            "item_id": ["10"], "title": ["Alpha (1995)"],
            "description": ["Alpha (1995) is a movie in the genres Action, Comedy."],
            "category": ["Action"], "tags": ["Action|Comedy"], "available": [True],
            "updated_at": [_ts("1997-12-04T15:55:49")],
        }, schema=ITEM_COLUMNS),
        pl.DataFrame({
            "item_id": ["20"], "title": ["Bête, La (1996)"],
            "description": ["Bête, La (1996) is a movie in the genre Drama."],
            "category": ["Drama"], "tags": ["Drama"], "available": [True],
            "updated_at": [_ts("1997-12-06T15:55:49")],
        }, schema=ITEM_COLUMNS),
    ]
    for day, events, items in zip(days, expected_events, expected_items, strict=True):
        assert_frame_equal(day.events, events)
        assert_frame_equal(day.items, items)


def test_tiny_latest_folder_lands_tags_on_the_right_day(tmp_path: Path) -> None:
    folder = tmp_path / "latest"
    folder.mkdir()
    day1, day2, day4 = 1_000_000_000, 1_000_086_400, 1_000_259_200  # 2001-09-09, -10, -12
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        f"1,5,4.5,{day1 + 60}\n1,6,2.0,{day2}\n2,5,3.5,{day4}\n"
    )
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n5,"Five, The (2000)",Comedy|Drama\n6,Six (2001),(no genres listed)\n'
        "7,Seven (2002),Horror\n"
    )
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n"
        f"3,5,early,{day1}\n"  # before the first rating: part of the entry row
        f"3,5,comedy,{day1 + 10}\n"  # repeats a genre: adds nothing
        f"3,6,later,{day2 + 100}\n"  # same day as entry, after it: in the entry row
        f"3,5,Gap|Day,{day2 + 86_400 + 5}\n"  # a day without ratings: lands on day 4
        f"4,5,EARLY,{day4 - 10}\n"  # a repeat in other case: adds nothing
        f"3,7,unrated,{day1}\n"  # never-rated movie: dropped
        f"3,6,after,{day4 + 86_400}\n"  # after the last day with ratings: nowhere to land
    )
    days = list(to_raw_days(load_movielens(folder)))
    assert [d.ds for d in days] == [date(2001, 9, 9), date(2001, 9, 10), date(2001, 9, 12)]
    rows = [d.items.select("item_id", "category", "tags", "updated_at").rows() for d in days]
    assert rows == [
        [("5", "Comedy", "Comedy|Drama|early",
          datetime.fromtimestamp(day1 + 60, UTC))],
        [("6", None, "later", datetime.fromtimestamp(day2 + 100, UTC))],
        [("5", "Comedy", "Comedy|Drama|early|Gap/Day",
          datetime.fromtimestamp(day2 + 86_400 + 5, UTC))],
    ]
    assert days[1].items["description"].item() == "Six (2001) is a movie."
    assert [d.events.height for d in days] == [1, 1, 1]


def test_folder_without_movielens_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MovieLensLayoutError, match="does not exist"):
        load_movielens(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MovieLensLayoutError, match=r"empty is not a MovieLens folder.*u\.data"):
        load_movielens(empty)
    (empty / "u.data").write_text("1\t1\t1\t1\n")
    with pytest.raises(MovieLensLayoutError, match=r"missing u\.item"):
        load_movielens(empty)
