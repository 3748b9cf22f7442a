"""The feature definitions, written once with narwhals and run by polars, Spark or Dask.

Two stages keep the nightly cost proportional to new data:

1. ``daily_*``: each day's clean events are summarised once. Time decay is applied up to the end
   of that day, so a later night only rescales it: ``0.5 ** (age / h)`` factors into
   ``0.5 ** ((as_of - day_end) / h) * 0.5 ** ((day_end - ts) / h)``.
2. ``merge_*``: the features for ``ds`` are merged from the daily summaries of the history
   window, each carrying ``offset`` = days between its partition and ``ds``.

Engines see plain columns only: event timestamps arrive as ``ts_us`` (microseconds since the
epoch, added by the engine adapter), and every aggregation is a plain sum, min or max over
columns computed beforehand, which is what Dask's group-by accepts.

Real-valued sums are taken in fixed point (``*_fp``: units of 2**-32, int64). Integer sums do not
depend on the order rows are added in, so a rerun, or another engine with another partitioning,
gives the same bits, and the model trained on them is the same model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import narwhals as nw
import polars as pl

from pipelines.core.contracts import EVENT_TYPES

US_PER_DAY = 86_400_000_000
FIXED = float(2**32)
WINDOWS = (1, 7, 30)
PAIR = ("user_id", "item_id")


@dataclass(frozen=True)
class Signal:
    """How events become confidence: weights by type, the rating map and the decay."""

    weights: Mapping[str, float]
    rating_neutral: float
    rating_max: float
    min_rating_weight: float
    half_life_days: float


def _weight(signal: Signal) -> nw.Expr:
    event = nw.col("event_type")
    weight = nw.lit(0.0)
    for kind in EVENT_TYPES:
        weight = nw.when(event == kind).then(nw.lit(float(signal.weights.get(kind, 0.0)))) \
            .otherwise(weight)
    span = max(signal.rating_max - signal.rating_neutral, 1e-9)
    scale = ((nw.col("value") - signal.rating_neutral) / span).clip(signal.min_rating_weight, 1.0)
    return nw.when(event == "rate").then(weight * scale).otherwise(weight)


def _fixed(value: nw.Expr) -> nw.Expr:
    return (value * FIXED).round(0).cast(nw.Int64)


def _decay_to_day_end(half_life_days: float) -> nw.Expr:
    age_days = (nw.col("day_end_us") - nw.col("ts_us")) / US_PER_DAY
    return nw.lit(0.5) ** (age_days.clip(lower_bound=0.0) / half_life_days)


def _counts(events: nw.LazyFrame) -> nw.LazyFrame:
    """Per-event columns that every summary sums: a one, rating fields, a flag per type."""
    is_rate = nw.col("event_type") == "rate"
    return events.with_columns(
        _one=nw.lit(1, nw.Int64),
        _rate_ts_us=nw.when(is_rate).then(nw.col("ts_us")),
        _rating=nw.when(is_rate).then(nw.col("value")),
        _rating_fp=_fixed(nw.when(is_rate).then(nw.col("value")).otherwise(0.0)),
        _rated=is_rate.cast(nw.Int64),
        **{f"n_{kind}": (nw.col("event_type") == kind).cast(nw.Int64) for kind in EVENT_TYPES},
    )


def _with_signal(rows: nw.LazyFrame, signal: Signal) -> nw.LazyFrame:
    decay = _decay_to_day_end(signal.half_life_days)
    return rows.with_columns(_signal_fp=_fixed(_weight(signal) * decay), _decay_fp=_fixed(decay))


KEY = "_key"


def _keyed(rows: nw.LazyFrame, keys: tuple[str, ...]) -> nw.LazyFrame:
    """Rows with one string column ``_key`` made of ``keys``.

    Summaries group and join on this single column: Dask's planner fails on a multi-column
    merge of group-by results, and one key shuffles once on every engine."""
    return rows.with_columns(
        nw.concat_str([nw.col(k).cast(nw.String) for k in keys], separator="\x1f").alias(KEY))


def _by_key(rows: nw.LazyFrame, keys: tuple[str, ...], *aggs: nw.Expr) -> nw.LazyFrame:
    """Group keyed rows by ``_key``; each key column comes back as its (single) value."""
    return rows.group_by(KEY).agg(*[nw.col(k).max() for k in keys], *aggs)


def _last_rating(rows: nw.LazyFrame, ts: str) -> nw.LazyFrame:
    """``_key, last_rating``: the rating at the latest rating time (ties: the highest)."""
    rated = rows.filter(~nw.col(ts).is_null()).select(KEY, ts, "_rating")
    latest = rated.group_by(KEY).agg(nw.col(ts).max())
    return latest.join(rated, on=[KEY, ts]).group_by(KEY).agg(
        nw.col("_rating").max().alias("last_rating"))


DAY = "day_end_us"


def daily_pairs(events: nw.LazyFrame, signal: Signal) -> nw.LazyFrame:
    """Per day and (user, item): signal decayed to the day's end, counts, last times.

    ``events`` carry ``day_end_us``, the end of the partition day they came from, so many days
    are summarised in one pass."""
    rows = _keyed(_with_signal(_counts(events), signal), (DAY, *PAIR))
    summary = _by_key(
        rows, (DAY, *PAIR),
        nw.col("_signal_fp").sum().alias("signal_fp"),
        nw.col("_one").sum().alias("n_events"),
        *[nw.col(f"n_{kind}").sum() for kind in EVENT_TYPES],
        nw.col("ts_us").max().alias("last_ts_us"),
        nw.col("_rate_ts_us").max().alias("last_rate_ts_us"),
    )
    return summary.join(_last_rating(rows, "_rate_ts_us"), on=KEY, how="left").drop(KEY)


def daily_users(events: nw.LazyFrame) -> nw.LazyFrame:
    """Per day and user: counts by type, ratings and the last event time."""
    return _by_key(
        _keyed(_counts(events), (DAY, "user_id")), (DAY, "user_id"),
        nw.col("_one").sum().alias("n_events"),
        *[nw.col(f"n_{kind}").sum() for kind in EVENT_TYPES],
        nw.col("_rating_fp").sum().alias("rating_sum_fp"),
        nw.col("_rated").sum().alias("n_ratings"),
        nw.col("ts_us").max().alias("last_ts_us"),
    ).drop(KEY)


def daily_items(events: nw.LazyFrame, signal: Signal) -> nw.LazyFrame:
    """Per day and item: counts, popularity decayed to the day's end, ratings, first time."""
    return _by_key(
        _keyed(_with_signal(_counts(events), signal), (DAY, "item_id")), (DAY, "item_id"),
        nw.col("_one").sum().alias("n_events"),
        nw.col("_decay_fp").sum().alias("popularity_fp"),
        nw.col("_rating_fp").sum().alias("rating_sum_fp"),
        nw.col("_rated").sum().alias("n_ratings"),
        nw.col("ts_us").min().alias("first_ts_us"),
    ).drop(KEY)


def _rescale(offset: nw.Expr, half_life_days: float) -> nw.Expr:
    return nw.lit(0.5) ** (offset.cast(nw.Float64) / half_life_days)


def merge_pairs(daily: nw.LazyFrame, half_life_days: float) -> nw.LazyFrame:
    """Interactions for ``ds`` from daily pair summaries (each with its ``offset`` in days)."""
    rows = _keyed(daily.with_columns(
        _confidence_fp=_fixed(nw.col("signal_fp") / FIXED
                              * _rescale(nw.col("offset"), half_life_days)),
        _rating=nw.col("last_rating"),
    ), PAIR)
    merged = _by_key(
        rows, PAIR,
        nw.col("_confidence_fp").sum().alias("confidence_fp"),
        nw.col("n_events").sum(),
        *[nw.col(f"n_{kind}").sum() for kind in EVENT_TYPES],
        nw.col("last_ts_us").max(),
        nw.col("last_rate_ts_us").max(),
    )
    return merged.join(_last_rating(rows, "last_rate_ts_us"), on=KEY, how="left").drop(KEY)


def _windowed(column: str, offset: nw.Expr) -> dict[str, nw.Expr]:
    return {f"{column}_{w}d": nw.when(offset < w).then(nw.col(column)).otherwise(0)
            for w in WINDOWS}


def merge_users(daily: nw.LazyFrame, as_of_us: int) -> nw.LazyFrame:
    """Users for ``ds``: counts by type over 1/7/30 days and the window, active days, recency."""
    offset = nw.col("offset")
    windowed = {}
    for column in ("n_events", *[f"n_{kind}" for kind in EVENT_TYPES]):
        windowed |= _windowed(column, offset)
    rows = daily.with_columns(_one=nw.lit(1, nw.Int64), **windowed)
    return rows.group_by("user_id").agg(
        nw.col("n_events").sum(),
        *[nw.col(f"n_{kind}").sum() for kind in EVENT_TYPES],
        *[nw.col(name).sum() for name in windowed],
        nw.col("_one").sum().alias("active_days"),
        nw.col("last_ts_us").max(),
        nw.col("rating_sum_fp").sum(),
        nw.col("n_ratings").sum(),
    ).with_columns(since_last_us=nw.lit(as_of_us) - nw.col("last_ts_us"))


def merge_items(daily: nw.LazyFrame, pairs: nw.LazyFrame, half_life_days: float) -> nw.LazyFrame:
    """Items for ``ds``: popularity over 1/7/30 days and the window, decayed popularity, trend
    (last 7 days against the 7 before, add-one smoothed), first seen, distinct users, ratings."""
    offset = nw.col("offset")
    windowed = _windowed("n_events", offset)
    rows = daily.with_columns(
        _decayed_fp=_fixed(nw.col("popularity_fp") / FIXED * _rescale(offset, half_life_days)),
        _prev_7d=nw.when((offset >= 7) & (offset < 14)).then(nw.col("n_events")).otherwise(0),
        **windowed,
    )
    users = pairs.with_columns(_one=nw.lit(1, nw.Int64)).group_by("item_id").agg(
        nw.col("_one").sum().alias("n_users"))
    return rows.group_by("item_id").agg(
        nw.col("n_events").sum(),
        *[nw.col(name).sum() for name in windowed],
        nw.col("_prev_7d").sum().alias("n_events_prev_7d"),
        nw.col("_decayed_fp").sum().alias("popularity_fp"),
        nw.col("first_ts_us").min(),
        nw.col("rating_sum_fp").sum(),
        nw.col("n_ratings").sum(),
    ).join(users, on="item_id", how="left")


def user_categories(pairs: nw.LazyFrame, catalog: nw.LazyFrame) -> nw.LazyFrame:
    """Event counts per (user, category) of the catalog as of ``ds``."""
    rows = pairs.join(catalog.select("item_id", "category"), on="item_id", how="inner") \
        .filter(~nw.col("category").is_null())
    return _by_key(_keyed(rows, ("user_id", "category")), ("user_id", "category"),
                   nw.col("n_events").sum()).drop(KEY)


# --- final shaping of collected results (polars, identical for every engine) -------------------
# Ratios are taken here, on the integers the engines summed: engines round a float division
# differently in the last bit, and the model version hashes these values.

COUNT_COLUMNS = ("n_events", *[f"n_{kind}" for kind in EVENT_TYPES])


def _ints(frame: pl.DataFrame, names: list[str] | tuple[str, ...]) -> list[pl.Expr]:
    return [pl.col(n).fill_null(0).cast(pl.Int64) for n in names if n in frame.columns]


def _us_to_ts(name: str, alias: str) -> pl.Expr:
    return pl.col(name).cast(pl.Int64).cast(pl.Datetime("us", "UTC")).alias(alias)


def _mean_rating() -> pl.Expr:
    n = pl.col("n_ratings").cast(pl.Int64)
    return pl.when(n > 0).then(pl.col("rating_sum_fp").cast(pl.Int64) / FIXED / n) \
        .cast(pl.Float64).alias("mean_rating")


def finish_interactions(frame: pl.DataFrame) -> pl.DataFrame:
    """Collected ``merge_pairs`` output as the ``interactions`` table, sorted by key."""
    return frame.select(
        "user_id", "item_id",
        (pl.col("confidence_fp").cast(pl.Float64) / FIXED).alias("confidence"),
        *_ints(frame, COUNT_COLUMNS),
        _us_to_ts("last_ts_us", "last_ts"), pl.col("last_rating").cast(pl.Float64),
    ).sort("user_id", "item_id")


def finish_users(frame: pl.DataFrame, categories: pl.DataFrame, top: int = 3) -> pl.DataFrame:
    """Collected ``merge_users`` output plus the user's ``top`` categories ("a|b|c")."""
    counts = [c for c in frame.columns if c.startswith("n_") and c != "n_ratings"]
    tops = (
        categories.sort(["user_id", "n_events", "category"], descending=[False, True, False])
        .group_by("user_id", maintain_order=True).head(top)
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("category").str.join("|").alias("top_categories"))
    )
    return frame.select(
        "user_id", *_ints(frame, sorted(counts)), *_ints(frame, ["active_days", "n_ratings"]),
        _us_to_ts("last_ts_us", "last_ts"),
        (pl.col("since_last_us").cast(pl.Int64) / US_PER_DAY).alias("days_since_last"),
        _mean_rating(),
    ).join(tops, on="user_id", how="left").sort("user_id")


def finish_items(frame: pl.DataFrame) -> pl.DataFrame:
    """Collected ``merge_items`` output as the ``items`` table."""
    counts = [c for c in frame.columns if c.startswith("n_")]
    return frame.select(
        "item_id", *_ints(frame, sorted(counts)),
        (pl.col("popularity_fp").cast(pl.Float64) / FIXED).alias("popularity"),
        ((pl.col("n_events_7d").cast(pl.Int64) + 1)
         / (pl.col("n_events_prev_7d").cast(pl.Int64) + 1)).alias("trend"),
        _us_to_ts("first_ts_us", "first_seen").dt.date().alias("first_seen"),
        _mean_rating(),
    ).sort("item_id")
