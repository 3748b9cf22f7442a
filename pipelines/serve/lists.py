"""Ranked lists as frames: index and score matrices of any model to rows, dot-product and
popularity lists, and what users have seen as a matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.core.contracts import REC_SCHEMA
from pipelines.core.settings import ServeSettings
from pipelines.model.als import Factors
from pipelines.serve.scoring import csr_from_pairs, top_n


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


def seen_pairs(interactions: pl.DataFrame, serve: ServeSettings) -> pl.DataFrame | None:
    """``user_id, item_id`` pairs to keep out of lists: those with an interaction of one of
    ``serve.exclude_event_types`` (None when ``exclude_seen`` is off)."""
    if not serve.exclude_seen:
        return None
    hit = pl.any_horizontal([pl.col(f"n_{kind}") > 0 for kind in serve.exclude_event_types]
                            or [pl.lit(False)])
    return interactions.filter(hit).select("user_id", "item_id")


@dataclass(frozen=True)
class Rerank:
    """Diversity re-ranking of a candidate pool: MMR over item vectors, category caps."""

    pool: int                       # candidates per user to choose the final n from
    mmr_lambda: float | None        # None: no MMR
    item_vecs: np.ndarray | None    # unit vectors aligned with the model's items
    categories: np.ndarray | None   # category code per model item, -1 for none
    max_per_category: int | None

    @classmethod
    def from_settings(cls, serve: ServeSettings, model_items: pl.Series,
                      item_vecs: pl.DataFrame, catalog: pl.DataFrame) -> Rerank | None:
        """None when neither MMR nor caps are configured."""
        use_mmr = serve.mmr_lambda < 1
        if not use_mmr and not serve.max_per_category:
            return None
        frame = pl.DataFrame({"item_id": model_items})
        vecs = None
        if use_mmr:
            aligned = frame.join(item_vecs.select("item_id", "vector"), on="item_id",
                                 how="left", maintain_order="left")
            dim = item_vecs.schema["vector"].size
            vecs = np.zeros((model_items.len(), dim), dtype=np.float32)
            has = aligned["vector"].is_not_null().to_numpy()
            if has.any():
                vecs[has] = aligned["vector"].filter(has).to_numpy()
        codes = None
        if serve.max_per_category:
            cats = frame.join(catalog.select("item_id", "category"), on="item_id", how="left",
                              maintain_order="left")["category"]
            codes = cats.cast(pl.Categorical).to_physical().fill_null(-1).to_numpy().astype(
                np.int64)
            codes[cats.is_null().to_numpy()] = -1
        return cls(pool=serve.top_n * serve.candidates_factor,
                   mmr_lambda=serve.mmr_lambda if use_mmr else None, item_vecs=vecs,
                   categories=codes, max_per_category=serve.max_per_category or None)


def top_n_lists(factors: Factors, model_users: pl.Series, model_items: pl.Series,
                users: pl.Series, n: int, seen: pl.DataFrame | None,
                available: pl.Series | None = None, *, memory_mb: float = 512,
                device: str = "cpu", rerank: Rerank | None = None) -> pl.DataFrame:
    """Top-n lists from dot-product scores for ``users`` (those unknown to the model get none).

    ``model_users`` / ``model_items``: the ids of the factor rows; ``available``: item ids that
    may be recommended (default: every item of the model); ``rerank``: choose the n from a
    larger candidate pool for diversity (scores are then the MMR values, still non-increasing).
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
    pool = max(n, rerank.pool) if rerank else n
    idx, scores = top_n(factors.user[rows], factors.item, pool, exclude=exclude, item_mask=mask,
                        memory_mb=memory_mb, device=device)
    if rerank is not None:
        from pipelines.serve.diversity import rerank as rerank_pool

        idx, scores = rerank_pool(idx, scores, n, item_vecs=rerank.item_vecs,
                                  mmr_lambda=rerank.mmr_lambda, categories=rerank.categories,
                                  max_per_category=rerank.max_per_category)
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
