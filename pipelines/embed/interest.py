"""User-interest memory: an exponential moving average of each user's history embeddings.

For the users active on ``ds`` (since the previous state, when a night was skipped),
``u_D = normalise((1 - alpha) * u_prev + alpha * h_D)``, where ``h_D`` is the embedding of the
user's history text as of ``ds`` and ``u_prev`` the state of the latest earlier day; a user seen
for the first time starts at ``h_D``; everyone else keeps their state. The whole state is
written for every ``ds``, so a day's state depends only on the day before it and on the day
itself: a rerun or a backfill of a day recomputes the same vectors.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from pipelines.embed.encoder import vector_matrix

STATE_SCHEMA = {"user_id": pl.String, "updated": pl.Date, "updates": pl.Int32}


def empty_state(dim: int) -> pl.DataFrame:
    return pl.DataFrame(schema={**STATE_SCHEMA, "vector": pl.Array(pl.Float32, dim)})


def update_interest(prev: pl.DataFrame, today: pl.DataFrame, alpha: float,
                    ds: date) -> pl.DataFrame:
    """The state after ``ds``.

    ``prev``: ``user_id, vector, updated, updates`` (the state before ``ds``; may be empty);
    ``today``: ``user_id, vector`` (``h_D`` of the users active on ``ds``).
    Returns every user of either, sorted by ``user_id``; ``updates`` counts the days that moved a
    user's vector.
    """
    dim = today.schema["vector"].size
    if prev.height and prev.schema["vector"].size != dim:
        raise ValueError(f"interest state has {prev.schema['vector'].size}-d vectors, "
                         f"today's history vectors are {dim}-d")
    today = today.select("user_id", "vector").unique("user_id").sort("user_id")
    known = today.join(prev.select("user_id", "updates", pl.col("vector").alias("_prev")),
                       on="user_id", how="left")
    h = vector_matrix(known).astype(np.float64)
    has_prev = known["_prev"].is_not_null().to_numpy()
    u = h.copy()
    if has_prev.any():
        prior = vector_matrix(known.filter(pl.col("_prev").is_not_null()),
                              "_prev").astype(np.float64)
        u[has_prev] = (1 - alpha) * prior + alpha * h[has_prev]
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    u = np.divide(u, norms, out=np.zeros_like(u), where=norms > 0)
    moved = pl.DataFrame({
        "user_id": known["user_id"],
        "updated": pl.Series([ds] * known.height, dtype=pl.Date),
        "updates": (known["updates"].fill_null(0) + 1).cast(pl.Int32),
        "vector": pl.Series(u.astype(np.float32), dtype=pl.Array(pl.Float32, dim)),
    })
    kept = prev.join(today.select("user_id"), on="user_id", how="anti")
    return pl.concat([kept.select(moved.columns).cast(moved.schema), moved]).sort("user_id")


def starting_state(stored: pl.DataFrame | None, day: date | None, model: str,
                   dim: int) -> tuple[pl.DataFrame, date | None]:
    """The state a night moves from: the latest earlier day's (``stored``, written on
    ``day``), or an empty one when there is none or it was built with another ``model``
    (cosines mean nothing across models); the date is None when starting afresh."""
    if stored is None or day is None or (stored.height and stored["model"][0] != model):
        return empty_state(dim), None
    return stored.drop("model"), day
