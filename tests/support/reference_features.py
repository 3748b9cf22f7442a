"""The direct (non-incremental) feature formulas over raw events: the oracle that the
incremental, multi-engine definitions in ``pipelines.features.definitions`` are tested against.

Confidence of a (user, item) pair is the sum over its events of
``weight(event) * 0.5 ** (age_days / half_life_days)``, where the age is measured from the end
of the run's day ``ds`` (never from the wall clock), so the same inputs give the same numbers.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from pipelines.core.contracts import EVENT_TYPES
from pipelines.core.settings import FeatureSettings, ValidateSettings

SECONDS_PER_DAY = 86_400.0


def event_weight(fs: FeatureSettings, vs: ValidateSettings) -> pl.Expr:
    """Weight of one event: by type; a rating scales its weight from weak to full."""
    base = pl.col("event_type").replace_strict(
        {t: float(fs.event_weights.get(t, 0.0)) for t in EVENT_TYPES}, default=0.0,
        return_dtype=pl.Float64,
    )
    span = max(vs.rating_max - fs.rating_neutral, 1e-9)
    rating_scale = ((pl.col("value") - fs.rating_neutral) / span).clip(fs.min_rating_weight, 1.0)
    return pl.when(pl.col("event_type") == "rate").then(base * rating_scale).otherwise(base)


def decay(as_of: datetime, half_life_days: float) -> pl.Expr:
    age_days = (pl.lit(as_of) - pl.col("ts")).dt.total_microseconds() / 1e6 / SECONDS_PER_DAY
    return pl.lit(0.5) ** (age_days.clip(lower_bound=0.0) / half_life_days)


def interactions(events: pl.DataFrame, as_of: datetime, fs: FeatureSettings,
                 vs: ValidateSettings) -> pl.DataFrame:
    """One row per (user, item): confidence, event counts by type, last time, last rating."""
    counts = [
        (pl.col("event_type") == t).sum().cast(pl.Int64).alias(f"n_{t}") for t in EVENT_TYPES
    ]
    return (
        events.with_columns(
            (event_weight(fs, vs) * decay(as_of, fs.half_life_days)).alias("_signal")
        )
        .sort("ts", "event_id")
        .group_by("user_id", "item_id")
        .agg(
            pl.col("_signal").sum().alias("confidence"),
            pl.len().cast(pl.Int64).alias("n_events"),
            *counts,
            pl.col("ts").max().alias("last_ts"),
            pl.col("value").filter(pl.col("event_type") == "rate").last().alias("last_rating"),
        )
        .sort("user_id", "item_id")
    )


def users(events: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """Per user: event count, active days, last event and days since, mean rating."""
    ratings = pl.col("value").filter(pl.col("event_type") == "rate")
    return (
        events.group_by("user_id")
        .agg(
            pl.len().cast(pl.Int64).alias("n_events"),
            pl.col("ts").dt.date().n_unique().cast(pl.Int64).alias("active_days"),
            pl.col("ts").max().alias("last_ts"),
            ratings.mean().alias("mean_rating"),
        )
        .with_columns(
            ((pl.lit(as_of) - pl.col("last_ts")).dt.total_microseconds() / 1e6 / SECONDS_PER_DAY)
            .alias("days_since_last")
        )
        .sort("user_id")
    )


def items(events: pl.DataFrame, as_of: datetime, fs: FeatureSettings) -> pl.DataFrame:
    """Per item: events, distinct users, time-decayed popularity, first seen, ratings."""
    ratings = pl.col("value").filter(pl.col("event_type") == "rate")
    return (
        events.with_columns(decay(as_of, fs.half_life_days).alias("_decay"))
        .group_by("item_id")
        .agg(
            pl.len().cast(pl.Int64).alias("n_events"),
            pl.col("user_id").n_unique().cast(pl.Int64).alias("n_users"),
            pl.col("_decay").sum().alias("popularity"),
            pl.col("ts").min().alias("first_seen"),
            ratings.len().cast(pl.Int64).alias("n_ratings"),
            ratings.mean().alias("mean_rating"),
        )
        .sort("item_id")
    )
