"""Small hand-made worlds for the model tests: events in, the models' inputs as of a day out,
built the way the features are (confidence, last time, windowed counts) but without a lake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from pipelines.model.retrieval import AsOf

Event = tuple[str, str, date]  # user, item, day


def as_of(events: list[Event], day: date, vectors: dict[str, list[float]] | None = None,
          categories: dict[str, str] | None = None,
          catalog: list[str] | None = None) -> AsOf:
    """The inputs at the end of ``day`` from the events on or before it (one confidence per
    event, the last event's time per pair)."""
    rows = [(u, i, datetime(d.year, d.month, d.day, 12, tzinfo=UTC) + timedelta(seconds=n))
            for n, (u, i, d) in enumerate(events) if d <= day]
    ev = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String,
                                    "ts": pl.Datetime("us", "UTC")}, orient="row")
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    age = (pl.lit(end) - pl.col("ts")).dt.total_seconds() / 86400
    interactions = ev.group_by("user_id", "item_id").agg(
        pl.len().cast(pl.Float64).alias("confidence"), pl.col("ts").max().alias("last_ts"),
    ).sort("user_id", "item_id")
    items = ev.group_by("item_id").agg(
        pl.col("user_id").n_unique().alias("n_users"), pl.len().cast(pl.Float64)
        .alias("popularity"), pl.lit(1.0).alias("trend"),
        (age < 1).sum().alias("n_events_1d"), (age < 7).sum().alias("n_events_7d"),
        (age < 30).sum().alias("n_events_30d"), pl.col("ts").min().dt.date().alias("first_seen"),
        pl.lit(None, pl.Float64).alias("mean_rating"),
    ).sort("item_id")
    users = ev.group_by("user_id").agg(
        pl.len().alias("n_events"), pl.col("ts").dt.date().n_unique().alias("active_days"),
        ((pl.lit(end) - pl.col("ts").max()).dt.total_seconds() / 86400)
        .alias("days_since_last"),
    ).sort("user_id")
    known = catalog or sorted(set(ev["item_id"]))
    vectors = vectors or {}
    dim = len(next(iter(vectors.values()))) if vectors else 0
    embedded = [i for i in known if i in vectors]
    matrix = np.array([vectors[i] for i in embedded], dtype=np.float32).reshape(
        len(embedded), dim)
    item_vectors = pl.DataFrame({"item_id": embedded}, schema={"item_id": pl.String}
                                ).with_columns(pl.Series("vector", matrix,
                                                         dtype=pl.Array(pl.Float32, dim)))
    cats = categories or {}
    return AsOf(day=day, interactions=interactions, items=items, users=users,
                item_vectors=item_vectors, interest=None,
                categories=pl.DataFrame({"item_id": known,
                                         "category": [cats.get(i) for i in known]},
                                        schema={"item_id": pl.String, "category": pl.String}))
