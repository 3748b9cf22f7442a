"""One shard's lists: the published model's top-N for the shard's users, seen and unavailable
items excluded, re-ranked for diversity when configured, each row with a reason; and the
popularity list for users the pipeline does not know."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.core.settings import RetrievalSettings, ServeSettings
from pipelines.model.recommender import Model, ranked
from pipelines.serve.lists import lists_frame, seen_matrix
from pipelines.serve.reasons import explain

POPULAR_NOW = 20  # items of the day's popular list whose rows may read "popular now"


@dataclass(frozen=True)
class ShardLists:
    lists: pl.DataFrame  # user_id, rank, item_id, score, reason
    popular: pl.DataFrame  # rank, item_id, score: the day's chart for unknown users
    cold_rows: int  # rows of cold items


def popular_list(model: Model, name: str, available: pl.Series, n: int) -> pl.DataFrame:
    """``rank, item_id, score``: popularity list ``name``, available items only, most popular
    first (ties by item id)."""
    ret = model.retrieval
    frame = (pl.DataFrame({"item_id": ret.item_ids, "score": ret.popularity(name)
                           .astype(np.float64)})
             .filter(pl.col("item_id").is_in(available.implode())))
    return (frame.sort(["score", "item_id"], descending=[True, False]).head(n)
            .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank"))
            .select("rank", "item_id", "score"))


def shard_lists(model: Model, name: str, popular: str, users: pl.Series,
                seen: pl.DataFrame | None, item_vectors: pl.DataFrame,
                interactions: pl.DataFrame, catalog: pl.DataFrame, serve: ServeSettings,
                retrieval: RetrievalSettings, device: str = "cpu") -> ShardLists:
    """``name``: the published model; ``popular``: the popularity list for unknown users;
    ``users``: the shard's users; ``seen``: ``user_id, item_id`` pairs to leave out."""
    from pipelines.serve.diversity import rerank as rerank_pool
    from pipelines.serve.lists import Rerank

    ret = model.retrieval
    available = catalog.filter(pl.col("available"))["item_id"]
    known = (pl.DataFrame({"user_id": ret.user_ids}).with_row_index("_u")
             .join(pl.DataFrame({"user_id": users.unique()}), on="user_id").sort("_u"))
    rows = known["_u"].to_numpy().astype(np.int64)
    exclude = seen_matrix(seen, known["user_id"], ret.item_ids) if seen is not None else None
    mask = ret.item_ids.is_in(available.implode()).to_numpy()
    rerank = Rerank.from_settings(serve, ret.item_ids, item_vectors, catalog)
    pool = max(serve.top_n, rerank.pool) if rerank else serve.top_n
    idx, scores = ranked(model, name, rows, pool, retrieval, exclude=exclude, item_mask=mask,
                         memory_mb=serve.memory_mb, device=device)
    if rerank is not None:
        idx, scores = rerank_pool(idx, scores, serve.top_n, item_vecs=rerank.item_vecs,
                                  mmr_lambda=rerank.mmr_lambda, categories=rerank.categories,
                                  max_per_category=rerank.max_per_category)
    lists = lists_frame(known["user_id"], ret.item_ids, idx[:, :serve.top_n],
                        scores[:, :serve.top_n])
    cold = ret.item_ids.filter(ret.cold())
    chart = popular_list(model, popular, available, serve.top_n)
    lists = explain(lists, interactions, item_vectors, catalog, cold=cold,
                    popular=chart["item_id"].head(POPULAR_NOW))
    cold_rows = lists.filter(pl.col("item_id").is_in(cold.implode())).height
    return ShardLists(lists=lists, popular=chart, cold_rows=cold_rows)
