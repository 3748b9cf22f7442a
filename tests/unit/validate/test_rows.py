"""Row verdicts for raw events and catalog rows on three-to-six-row text fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED, ITEM_COLUMNS, ITEM_REQUIRED
from pipelines.core.errors import RawFileError
from pipelines.core.settings import ValidateSettings
from pipelines.validate.rawfiles import MALFORMED
from pipelines.validate.rows import (
    DUPLICATE,
    SOURCE,
    RowVerdict,
    concat_files,
    conform,
    latest_catalog,
    validate_events,
    validate_items,
)

DS = date(2024, 5, 1)
CATALOG = pl.Series("item_id", ["i1", "i2", "i3"])
NO_IDS = pl.Series("event_id", [], dtype=pl.String)
BASE_EVENT = {
    "event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "click",
    "ts": "2024-05-01T10:00:00Z", "value": None, "text": None,
}
BASE_ITEM = {
    "item_id": "i1", "title": "Tea", "description": "Green tea", "category": "food",
    "tags": "tea|green", "available": "true", "updated_at": "2024-04-30T12:00:00Z",
}


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _text_frame(rows: list[dict], base: dict, drop: tuple[str, ...] = ()) -> pl.DataFrame:
    """A raw file as its reader gives it: every column text, base values unless overridden."""
    cols = [c for c in base if c not in drop]
    data = [{c: {**base, **row}[c] for c in cols} for row in rows]
    return pl.DataFrame(data, schema={c: pl.String for c in cols})


def _event_file(rows: list[dict], source: str = "raw/events/ds=2024-05-01/a.csv",
                drop: tuple[str, ...] = ()) -> pl.DataFrame:
    return conform(_text_frame(rows, BASE_EVENT, drop), EVENT_COLUMNS, EVENT_REQUIRED, source)


def _item_file(rows: list[dict], source: str = "raw/items/ds=2024-05-01/a.csv",
               drop: tuple[str, ...] = ()) -> pl.DataFrame:
    return conform(_text_frame(rows, BASE_ITEM, drop), ITEM_COLUMNS, ITEM_REQUIRED, source)


def _events(*files: pl.DataFrame, accepted: list[str] | None = None,
            cfg: ValidateSettings | None = None) -> RowVerdict:
    raw = concat_files(list(files), EVENT_COLUMNS)
    ids = NO_IDS if accepted is None else pl.Series("event_id", accepted, dtype=pl.String)
    return validate_events(raw, DS, CATALOG, ids, cfg or ValidateSettings())[0]


def _reasons(v: RowVerdict) -> dict[str, str]:
    return dict(v.quarantine.select("event_id", "reasons").iter_rows())


def _assert_accounting(v: RowVerdict) -> None:
    assert v.n_raw == v.n_clean + v.n_quarantined + v.n_duplicates
    assert v.quarantine.height == v.n_quarantined + v.n_duplicates


# --- events: clean rows -------------------------------------------------------------------

def test_good_rows_are_clean_with_contract_types() -> None:
    v = _events(_event_file([
        {"event_id": "e1", "event_type": "view", "value": "12.5"},
        {"event_id": "e2", "event_type": "rate", "value": "4", "ts": "2024-05-01T09:00:00Z"},
        {"event_id": "e3", "event_type": "review", "text": "lovely", "item_id": "i2"},
    ]))
    assert (v.n_raw, v.n_clean, v.n_quarantined, v.n_duplicates) == (3, 3, 0, 0)
    assert v.clean.schema == pl.Schema(EVENT_COLUMNS)
    # Clean rows come out in time order.
    assert v.clean["event_id"].to_list() == ["e2", "e1", "e3"]
    assert v.clean["value"].to_list() == [4.0, 12.5, None]
    assert v.clean["text"].to_list() == [None, None, "lovely"]
    assert v.quarantine.is_empty()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"user_id": ""}, "missing_user_id"),
        ({"user_id": None}, "missing_user_id"),
        ({"user_id": "   "}, "missing_user_id"),
        ({"event_type": "like"}, "unknown_event_type"),
        ({"ts": "2024-05-02T00:00:00Z"}, "ts_in_future"),          # exactly the end of ds
        ({"ts": "2024-04-28T23:59:59Z"}, "ts_too_late"),           # 48 h + 1 s before ds
        ({"event_type": "rate", "value": "6"}, "rating_out_of_scale"),
        ({"event_type": "rate", "value": "0.5"}, "rating_out_of_scale"),
        ({"event_type": "rate", "value": None}, "missing_rating"),
        ({"event_type": "view", "value": "-1"}, "negative_dwell"),
        ({"item_id": "i9"}, "unknown_item"),
        ({"ts": "yesterday"}, "unparseable_ts"),
        ({"value": "lots"}, "unparseable_value"),
    ],
)
def test_each_reason_quarantines_the_row(row: dict, reason: str) -> None:
    v = _events(_event_file([{"event_id": "good"}, {"event_id": "bad", **row}]))
    assert _reasons(v) == {"bad": reason}
    assert v.clean["event_id"].to_list() == ["good"]
    assert v.quarantine[SOURCE].to_list() == ["raw/events/ds=2024-05-01/a.csv"]
    _assert_accounting(v)


def test_quarantine_keeps_raw_text() -> None:
    v = _events(_event_file([
        {"event_type": "view", "value": "-3.50", "ts": "2024-05-01 10:00:00"},
    ]))
    row = v.quarantine.row(0, named=True)
    assert row["value"] == "-3.50"
    assert row["ts"] == "2024-05-01 10:00:00"
    assert row["reasons"] == "negative_dwell"
    assert v.quarantine.columns == [*EVENT_COLUMNS, MALFORMED, SOURCE, "reasons"]


def test_several_reasons_are_all_listed() -> None:
    v = _events(_event_file([{"user_id": "", "event_type": "rate", "value": "9", "item_id": "i9"}]))
    assert _reasons(v) == {"e1": "missing_user_id,rating_out_of_scale,unknown_item"}


def test_text_too_long() -> None:
    cfg = ValidateSettings(max_text_chars=5)
    v = _events(_event_file([
        {"event_id": "ok", "event_type": "review", "text": "short"},
        {"event_id": "long", "event_type": "review", "text": "sixsix"},
    ]), cfg=cfg)
    assert _reasons(v) == {"long": "text_too_long"}


def test_boundaries_are_clean() -> None:
    v = _events(_event_file([
        {"event_id": "r1", "event_type": "rate", "value": "1"},
        {"event_id": "r5", "event_type": "rate", "value": "5"},
        {"event_id": "v0", "event_type": "view", "value": "0"},
        {"event_id": "late", "ts": "2024-04-29T00:00:00Z"},     # exactly 48 h before ds
        {"event_id": "last", "ts": "2024-05-01T23:59:59.999999Z"},
    ]))
    assert v.n_clean == 5
    assert v.quarantine.is_empty()


def test_lateness_is_configurable() -> None:
    rows = [{"event_id": "old", "ts": "2024-04-28T12:00:00Z"}]  # 60 h before the start of ds
    assert _reasons(_events(_event_file(rows))) == {"old": "ts_too_late"}
    relaxed = _events(_event_file(rows), cfg=ValidateSettings(lateness_hours=72))
    assert relaxed.clean["event_id"].to_list() == ["old"]
    strict = _events(_event_file([{"ts": "2024-04-30T23:00:00Z"}]),
                     cfg=ValidateSettings(lateness_hours=0))
    assert _reasons(strict) == {"e1": "ts_too_late"}


def test_rating_scale_is_configurable() -> None:
    cfg = ValidateSettings(rating_min=0.0, rating_max=10.0)
    v = _events(_event_file([{"event_type": "rate", "value": "9"}]), cfg=cfg)
    assert v.n_clean == 1


# --- events: time zones ----------------------------------------------------------------------

def test_timestamps_with_offsets_are_converted_to_utc() -> None:
    v = _events(_event_file([
        {"event_id": "plus2", "ts": "2024-05-01T10:00:00+02:00"},
        {"event_id": "minus0330", "ts": "2024-05-01T10:00:00-03:30"},
        {"event_id": "zulu", "ts": "2024-05-01T10:00:00Z"},
        {"event_id": "naive", "ts": "2024-05-01 11:00:00"},
        {"event_id": "frac", "ts": "2024-05-01T12:00:00.250+00:00"},
    ]))
    got = dict(v.clean.select("event_id", "ts").iter_rows())
    assert got == {
        "plus2": _utc(2024, 5, 1, 8),
        "minus0330": _utc(2024, 5, 1, 13, 30),
        "zulu": _utc(2024, 5, 1, 10),
        "naive": _utc(2024, 5, 1, 11),
        "frac": _utc(2024, 5, 1, 12, 0, 0, 250_000),
    }
    assert v.clean.schema["ts"] == pl.Datetime("us", "UTC")


def test_offset_is_applied_before_the_day_window() -> None:
    # 23:30 local at -01:00 is 00:30 UTC on the next day; 01:00 at +02:00 is the day before.
    v = _events(_event_file([
        {"event_id": "next_day", "ts": "2024-05-01T23:30:00-01:00"},
        {"event_id": "prev_day", "ts": "2024-05-01T01:00:00+02:00"},
    ]))
    assert _reasons(v) == {"next_day": "ts_in_future"}
    assert v.clean["ts"].to_list() == [_utc(2024, 4, 30, 23)]


# --- events: duplicates ---------------------------------------------------------------------

def test_duplicate_in_partition_first_delivery_wins() -> None:
    a = _event_file([{"event_id": "e1", "user_id": "first"}, {"event_id": "e2"}],
                    source="a.csv")
    b = _event_file([{"event_id": "e1", "user_id": "second"}, {"event_id": "e3"}],
                    source="b.csv")
    v = _events(a, b)
    assert v.clean["event_id"].sort().to_list() == ["e1", "e2", "e3"]
    assert v.clean.filter(pl.col("event_id") == "e1")["user_id"].item() == "first"
    assert v.quarantine.select("event_id", "user_id", SOURCE, "reasons").rows() == [
        ("e1", "second", "b.csv", DUPLICATE)
    ]
    assert (v.n_clean, v.n_quarantined, v.n_duplicates) == (3, 0, 1)
    _assert_accounting(v)


def test_duplicate_with_earlier_timestamp_wins() -> None:
    # The copy in the later file carries the earlier event time, so it is the first delivery.
    a = _event_file([{"event_id": "e1", "ts": "2024-05-01T10:00:00Z"}], source="a.csv")
    b = _event_file([{"event_id": "e1", "ts": "2024-05-01T09:00:00Z"}], source="b.csv")
    v = _events(a, b)
    assert v.clean["ts"].to_list() == [_utc(2024, 5, 1, 9)]
    assert v.quarantine[SOURCE].to_list() == ["a.csv"]
    assert v.n_duplicates == 1


def test_bad_copy_does_not_shadow_a_good_one() -> None:
    # The first copy is quarantined for its own reason; the second, good copy is the event.
    v = _events(_event_file([
        {"event_id": "e1", "user_id": ""},
        {"event_id": "e1", "user_id": "u1"},
    ]))
    assert v.clean["user_id"].to_list() == ["u1"]
    assert _reasons(v) == {"e1": "missing_user_id"}
    assert (v.n_quarantined, v.n_duplicates) == (1, 0)
    _assert_accounting(v)


def test_redelivery_of_accepted_event_is_duplicate() -> None:
    v = _events(_event_file([{"event_id": "old"}, {"event_id": "new"}]), accepted=["old", "x"])
    assert v.clean["event_id"].to_list() == ["new"]
    assert _reasons(v) == {"old": DUPLICATE}
    assert (v.n_clean, v.n_quarantined, v.n_duplicates) == (1, 0, 1)
    _assert_accounting(v)


def test_accounting_invariant_on_a_mixed_partition() -> None:
    a = _event_file([
        {"event_id": "e1"},
        {"event_id": "e2", "event_type": "bogus"},
        {"event_id": "e3"},
        {"event_id": "e1"},                             # duplicate inside the partition
    ], source="a.csv")
    b = _event_file([
        {"event_id": "e4", "item_id": "i9"},
        {"event_id": "e0"},                             # re-delivery of an accepted event
    ], source="b.csv")
    v = _events(a, b, accepted=["e0"])
    assert (v.n_raw, v.n_clean, v.n_quarantined, v.n_duplicates) == (6, 2, 2, 2)
    _assert_accounting(v)
    # Every raw row is accounted for exactly once.
    seen = sorted(v.clean["event_id"].to_list() + v.quarantine["event_id"].to_list())
    assert seen == ["e0", "e1", "e1", "e2", "e3", "e4"]


# --- events: file structure -------------------------------------------------------------------

@pytest.mark.parametrize("column", EVENT_REQUIRED)
def test_missing_required_column_raises_naming_file_and_column(column: str) -> None:
    with pytest.raises(RawFileError) as err:
        _event_file([{}], source="raw/events/ds=2024-05-01/broken.csv", drop=(column,))
    assert "raw/events/ds=2024-05-01/broken.csv" in str(err.value)
    assert column in str(err.value)


def test_missing_optional_columns_become_null_and_extras_are_dropped() -> None:
    raw = _text_frame([{}], BASE_EVENT, drop=("value", "text")).with_columns(
        pl.lit("x").alias("extra")
    )
    conformed = conform(raw, EVENT_COLUMNS, EVENT_REQUIRED, "a.jsonl")
    assert conformed.columns == [*EVENT_COLUMNS, MALFORMED, SOURCE]
    assert conformed.row(0, named=True)["value"] is None
    assert conformed[SOURCE].to_list() == ["a.jsonl"]
    assert _events(conformed).n_clean == 1


def test_empty_partition() -> None:
    raw = concat_files([], EVENT_COLUMNS)
    assert raw.columns == [*EVENT_COLUMNS, MALFORMED, SOURCE]
    v, _ = validate_events(raw, DS, CATALOG, NO_IDS, ValidateSettings())
    assert (v.n_raw, v.n_clean, v.n_quarantined, v.n_duplicates) == (0, 0, 0, 0)
    assert v.clean.schema == pl.Schema(EVENT_COLUMNS)


# --- items ------------------------------------------------------------------------------------

def test_validate_items_verdicts() -> None:
    raw = concat_files([_item_file([
        {"item_id": "i1"},
        {"item_id": "i2", "title": ""},
        {"item_id": "i3", "updated_at": "2024-05-02T00:00:00Z"},
        {"item_id": "i4", "available": "maybe"},
        {"item_id": "i5", "available": None, "updated_at": "2024-05-01T10:00:00+02:00"},
        {"item_id": "i6", "available": "0", "updated_at": "soon"},
    ])], ITEM_COLUMNS)
    v, _ = validate_items(raw, DS)
    assert dict(v.quarantine.select("item_id", "reasons").iter_rows()) == {
        "i2": "missing_title",
        "i3": "updated_at_in_future",
        "i4": "unparseable_available",
        "i6": "unparseable_updated_at",
    }
    assert v.clean.schema == pl.Schema(ITEM_COLUMNS)
    assert v.clean.rows() == [
        ("i1", "Tea", "Green tea", "food", "tea|green", True, _utc(2024, 4, 30, 12)),
        ("i5", "Tea", "Green tea", "food", "tea|green", True, _utc(2024, 5, 1, 8)),
    ]
    assert v.n_raw == v.n_clean + v.n_quarantined + v.n_duplicates
    assert v.n_duplicates == 0


def test_items_missing_required_column_raises() -> None:
    with pytest.raises(RawFileError, match=r"items/bad\.parquet.*updated_at"):
        _item_file([{}], source="items/bad.parquet", drop=("updated_at",))


def _catalog_rows(rows: list[tuple[str, str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{**{c: None for c in ITEM_COLUMNS}, "item_id": i, "title": t, "updated_at": ts,
          "available": True} for i, t, ts in rows],
        schema=ITEM_COLUMNS,
    )


def test_latest_catalog_keeps_the_newest_row_per_item() -> None:
    items = _catalog_rows([
        ("i2", "B new", _utc(2024, 5, 1)),
        ("i1", "A new", _utc(2024, 5, 1)),
        ("i1", "A old", _utc(2024, 4, 1)),     # older although later in the frame
        ("i2", "B old", _utc(2024, 3, 1)),
        ("i3", "C", _utc(2024, 2, 1)),
    ])
    latest = latest_catalog(items)
    assert latest.select("item_id", "title").rows() == [
        ("i1", "A new"), ("i2", "B new"), ("i3", "C"),
    ]
    assert latest.schema == items.schema


def test_latest_catalog_tie_goes_to_the_later_row() -> None:
    items = _catalog_rows([
        ("i1", "first", _utc(2024, 5, 1)),
        ("i1", "second", _utc(2024, 5, 1)),
    ])
    assert latest_catalog(items)["title"].to_list() == ["second"]


def test_latest_catalog_of_nothing() -> None:
    empty = _catalog_rows([])
    assert latest_catalog(empty).is_empty()


def test_truncated_last_json_line_is_quarantined_with_its_text() -> None:
    from pipelines.validate.rawfiles import parse_raw_file

    good = '{"event_id": "a", "user_id": "u1", "item_id": "i1", "event_type": "view", ' \
        f'"ts": "{DS}T10:00:00Z", "value": 3}}'
    raw = parse_raw_file("raw/events/part.jsonl", (good + '\n{"event_id": "b", "user_').encode())
    text = concat_files([conform(raw.frame, EVENT_COLUMNS, EVENT_REQUIRED, raw.url)],
                        EVENT_COLUMNS)
    v = _events(text)
    assert (v.n_raw, v.n_clean, v.n_quarantined) == (2, 1, 1)
    assert v.quarantine[MALFORMED][0] == 'truncated last line: {"event_id": "b", "user_'
    assert v.quarantine["reasons"][0].startswith("malformed_line")
