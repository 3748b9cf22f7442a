"""Recommendation lists as frames: ALS scores and popularity, excluding what users have seen."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.als import Factors
from pipelines.scoring import csr_from_pairs, top_n

REC_SCHEMA = {"user_id": pl.String, "rank": pl.Int32, "item_id": pl.String, "score": pl.Float64}


def _index(ids: pl.Series, name: str) -> pl.DataFrame:
    return pl.DataFrame({ids.name: ids, name: np.arange(ids.len(), dtype=np.int64)})


def seen_matrix(seen: pl.DataFrame, user_ids: pl.Series, item_ids: pl.Series):
    """users × items marker of the (user_id, item_id) pairs in ``seen`` (others are ignored)."""
    pairs = (
        seen.select("user_id", "item_id").unique()
        .join(_index(user_ids.rename("user_id"), "_u"), on="user_id")
        .join(_index(item_ids.rename("item_id"), "_i"), on="item_id")
    )
    return csr_from_pairs(pairs["_u"].to_numpy(), pairs["_i"].to_numpy(),
                          (user_ids.len(), item_ids.len()))


def lists_frame(user_ids: pl.Series, item_ids: pl.Series, idx: np.ndarray,
                scores: np.ndarray) -> pl.DataFrame:
    """Long format ``user_id, rank, item_id, score`` from top-n index and score matrices."""
    n_users, n = idx.shape
    valid = idx >= 0
    users = np.repeat(np.arange(n_users), n)[valid.ravel()]
    ranks = np.tile(np.arange(1, n + 1, dtype=np.int32), n_users)[valid.ravel()]
    items = idx.ravel()[valid.ravel()]
    return pl.DataFrame(
        {
            "user_id": user_ids.gather(users),
            "rank": ranks,
            "item_id": item_ids.gather(items),
            "score": scores.ravel()[valid.ravel()].astype(np.float64),
        },
        schema=REC_SCHEMA,
    )


def als_lists(factors: Factors, model_users: pl.Series, model_items: pl.Series,
              users: pl.Series, n: int, seen: pl.DataFrame | None,
              available: pl.Series | None = None) -> pl.DataFrame:
    """Top-n ALS lists for ``users`` (those unknown to the model get none).

    ``model_users`` / ``model_items``: the ids of the factor rows; ``available``: item ids that
    may be recommended (default: every item of the model).
    """
    index = _index(model_users.rename("user_id"), "_u")
    wanted = pl.DataFrame({"user_id": users.unique().sort()}).join(index, on="user_id")
    rows = wanted["_u"].to_numpy()
    exclude = None
    if seen is not None:
        exclude = seen_matrix(seen, wanted["user_id"], model_items)
    mask = None
    if available is not None:
        mask = model_items.is_in(available.implode()).to_numpy()
    idx, scores = top_n(factors.user[rows], factors.item, n, exclude=exclude, item_mask=mask)
    return lists_frame(wanted["user_id"], model_items, idx, scores)


def popularity_ranking(item_popularity: pl.DataFrame, available: pl.Series | None,
                       n: int) -> pl.DataFrame:
    """``rank, item_id, score``: most popular first (ties by item id)."""
    frame = item_popularity.select("item_id", pl.col("popularity").alias("score"))
    if available is not None:
        frame = frame.filter(pl.col("item_id").is_in(available.implode()))
    return (
        frame.sort(["score", "item_id"], descending=[True, False])
        .head(n)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank"))
        .select("rank", "item_id", "score")
    )


def popularity_lists(ranking: pl.DataFrame, users: pl.Series, n: int,
                     seen: pl.DataFrame | None) -> pl.DataFrame:
    """The popularity ranking for each user, minus what the user has seen, re-ranked."""
    grid = pl.DataFrame({"user_id": users.unique().sort()}).join(
        ranking.select("item_id", "score", pl.col("rank").alias("_pop_rank")), how="cross"
    )
    if seen is not None:
        grid = grid.join(seen.select("user_id", "item_id").unique(),
                         on=["user_id", "item_id"], how="anti")
    return (
        grid.sort(["user_id", "_pop_rank"])
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("user_id").alias("rank"))
        .filter(pl.col("rank") <= n)
        .select(list(REC_SCHEMA))
        .cast(REC_SCHEMA)
    )
