"""Whatever validation lets into clean/ can be published: generated raw values of every class
the raw contract allows (any Unicode text, control characters and NUL, long and blank ids,
numbers that overflow or are not numbers, timestamps of every shape) go through the raw-file
parser and the day's verdict, and the clean rows become lists, reasons, a catalog and similar
items published on both warehouses, and read back unchanged.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipelines.core.contracts import (
    EVENT_COLUMNS,
    EVENT_REQUIRED,
    EVENT_TYPES,
    ITEM_COLUMNS,
    ITEM_REQUIRED,
)
from pipelines.core.settings import ValidateSettings
from pipelines.validate.day import combine, judge_day
from pipelines.validate.polars_suite import PolarsSession
from pipelines.validate.rawfiles import RawFileError, parse_raw_file
from pipelines.validate.rows import latest_catalog
from pipelines.warehouse import PublishRules, RunBatch, open_warehouse

pytestmark = pytest.mark.slow

DS = date(2026, 10, 2)
CFG = ValidateSettings(accept_anomalies=True, max_text_chars=300)
RULES = PublishRules(top_n=5, retention_days=0, similar_items=3)

# Text of every class: any code point hypothesis draws (NUL and other controls included),
# plus values chosen to sit on the rules' edges.
EDGES = ["", " ", "\x00", "a\x00b", "\n", "\t", "\x7f", "é", "日本語", "😀", "'; drop table x;--",
         '"quoted"', "a,b", "x" * 256, "x" * 257, "1e400", "nan", "-inf", "-0"]
text = st.one_of(st.none(), st.sampled_from(EDGES), st.text(max_size=40))
ids = st.one_of(st.sampled_from(["u1", "u2", "i1", "i2", "i3", "e1"]), text)
timestamps = st.one_of(st.sampled_from(["2026-10-02T10:00:00Z", "2026-10-02T23:59:59.999999Z",
                                        "2026-10-02 08:00:00+02:00", "2026-10-03T00:00:00Z",
                                        "2026-10-01T20:00:00Z", "1e9", "soon"]), text)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.integers(-10**30, 10**30).map(str), text)
def _rows(base: dict[str, st.SearchStrategy], weird: dict[str, st.SearchStrategy],
          ) -> st.SearchStrategy:
    """A row that is mostly well formed, with up to two fields drawn from every class."""
    return st.fixed_dictionaries(base).flatmap(lambda row: st.dictionaries(
        st.sampled_from(sorted(weird)), st.none(), max_size=2).flatmap(
        lambda picked: st.fixed_dictionaries(
            {k: weird[k] if k in picked else st.just(v) for k, v in row.items()})))


valid_ts = st.sampled_from(["2026-10-02T10:00:00Z", "2026-10-02T23:59:59.999999Z",
                            "2026-10-02 08:00:00+02:00"])
events = _rows(
    {"event_id": st.uuids().map(str), "user_id": st.sampled_from(["u1", "u2", "ü 3", "😀"]),
     "item_id": st.sampled_from(["i1", "i2", "i3", "日本"]), "event_type": st.just("click"),
     "ts": valid_ts, "value": st.none(), "text": st.none()},
    {"event_id": ids, "user_id": ids, "item_id": ids,
     "event_type": st.one_of(st.sampled_from(EVENT_TYPES), text), "ts": timestamps,
     "value": numbers, "text": text})
items = _rows(
    {"item_id": st.sampled_from(["i1", "i2", "i3", "日本"]), "title": text.map(lambda t: t or "T"),
     "description": text, "category": text, "tags": text, "available": st.just("true"),
     "updated_at": st.just("2026-10-02T08:00:00Z")},
    {"item_id": ids, "title": text, "available": st.one_of(
        st.sampled_from(["true", "false", "1", "0"]), text), "updated_at": timestamps})


def _jsonl(rows: list[dict]) -> bytes:
    # ensure_ascii: every code point travels as an escape, NUL included.
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _batch(verdict, run: int) -> RunBatch | None:
    """The day's clean rows as a run would publish them: every clean user gets the available
    items they have not interacted with, each with a reason that quotes the item's title."""
    catalog = latest_catalog(verdict.items.clean).select(
        "item_id", "title", "category", pl.col("available").fill_null(True))
    available = catalog.filter("available").sort("item_id")
    clean = verdict.events.clean
    if available.is_empty() or clean.is_empty():
        return None
    seen = clean.select("user_id", "item_id").unique()
    lists = (clean.select("user_id").unique().join(available.select("item_id", "title"),
                                                   how="cross")
             .join(seen, on=["user_id", "item_id"], how="anti")
             .sort("user_id", "item_id")
             .with_columns(pl.int_range(pl.len()).over("user_id").alias("_r"))
             .filter(pl.col("_r") < RULES.top_n))
    if lists.is_empty():
        return None
    recs = lists.select("user_id", (pl.col("_r") + 1).cast(pl.Int32).alias("rank"), "item_id",
                        (1.0 / (pl.col("_r") + 1)).alias("score"),
                        pl.format("similar to {}", pl.col("title").fill_null("?"))
                        .alias("reason"))
    similar = (available.select("item_id").join(available.select(
        pl.col("item_id").alias("similar_item_id"), pl.col("title")), how="cross")
        .filter(pl.col("item_id") != pl.col("similar_item_id"))
        .sort("item_id", "similar_item_id")
        .with_columns(pl.int_range(pl.len()).over("item_id").alias("_r"))
        .filter(pl.col("_r") < RULES.similar_items)
        .select("item_id", (pl.col("_r") + 1).cast(pl.Int32).alias("rank"), "similar_item_id",
                (1.0 - pl.col("_r") / 10).alias("score"),
                pl.format("like {}", pl.col("title").fill_null("?")).alias("reason"),
                pl.lit("m:prop").alias("model_version")))
    return RunBatch(
        ds=DS, run_id=f"prop-{run}", model_version="m:prop", recommendations=recs,
        popular=available.head(3).select(pl.int_range(1, pl.len() + 1, dtype=pl.Int32)
                                         .alias("rank"), "item_id",
                                         pl.lit(1.0).alias("score")),
        metrics=pl.DataFrame(schema={"model": pl.String, "metric": pl.String, "k": pl.Int32,
                                     "value": pl.Float64}),
        catalog=catalog, seen=seen, active_users=recs["user_id"].n_unique(),
        started_at=datetime(2026, 10, 3, tzinfo=UTC), finished_at=datetime(2026, 10, 3,
                                                                           tzinfo=UTC),
        similar_items=similar)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(event_rows=st.lists(events, min_size=1, max_size=12),
       item_rows=st.lists(items, min_size=2, max_size=8), run=st.integers(0, 10**6))
def test_everything_validation_accepts_publishes_on_both_warehouses(
        warehouse_url: str, event_rows: list[dict], item_rows: list[dict], run: int) -> None:
    try:
        files = {"events": combine([parse_raw_file("raw/events/e.jsonl", _jsonl(event_rows))],
                                   EVENT_COLUMNS, EVENT_REQUIRED),
                 "items": combine([parse_raw_file("raw/items/i.jsonl", _jsonl(item_rows))],
                                  ITEM_COLUMNS, ITEM_REQUIRED)}
    except RawFileError as exc:
        # A whole file refused, with its name and why (e.g. no timestamp of it parses).
        assert str(exc).startswith("raw/")
        event("a raw file refused")
        return
    verdict = judge_day(files["items"].frame, files["events"].frame, DS,
                        pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.String), [],
                        CFG, PolarsSession())
    batch = _batch(verdict, run)
    if batch is None:
        event("nothing to list")
        return
    event("published")
    wh = open_warehouse(warehouse_url)
    wh.publish(batch, RULES)

    def read(sql: str, keys: list[str]) -> pl.DataFrame:  # in polars' order, not a collation's
        return wh.query(sql).cast({c: pl.Int32 for c in ("rank",) if c in keys}).sort(keys)

    assert read("select user_id, rank, item_id, score, reason from recs.recommendations_current",
                ["user_id", "rank"]).equals(batch.recommendations.sort("user_id", "rank"))
    assert read("select item_id, title, category, available from recs.items_current",
                ["item_id"]).equals(batch.catalog.sort("item_id"))
    assert read("select item_id, rank, similar_item_id, score, reason, model_version from "
                "recs.similar_items_current", ["item_id", "rank"]).equals(
        batch.similar_items.sort("item_id", "rank"))
