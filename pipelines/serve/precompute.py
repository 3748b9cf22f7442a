"""One shard's lists: the hybrid's top-N for the shard's active users, seen and unavailable
items excluded, re-ranked for diversity when configured, each row with a reason."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.core.settings import ServeSettings
from pipelines.model.hybrid import Hybrid
from pipelines.serve.lists import Rerank, popularity_ranking, seen_pairs, top_n_lists
from pipelines.serve.reasons import explain

POPULAR_NOW = 20  # items of the day's popular list whose rows may read "popular now"


@dataclass(frozen=True)
class ShardLists:
    lists: pl.DataFrame  # user_id, rank, item_id, score, reason
    popular: pl.DataFrame  # rank, item_id, score: the day's chart for unknown users
    cold_rows: int  # rows of cold items (scored through the content map)


def shard_lists(hybrid: Hybrid, users: pl.Series, interactions: pl.DataFrame,
                item_features: pl.DataFrame, item_vectors: pl.DataFrame,
                catalog: pl.DataFrame, serve: ServeSettings, device: str) -> ShardLists:
    """``users``: the shard's active users; the frames are the day's features, item vectors
    and catalog."""
    available = catalog.filter(pl.col("available"))["item_id"]
    seen = seen_pairs(interactions, serve)
    model_items = hybrid.base.item_ids
    rerank = Rerank.from_settings(serve, model_items, item_vectors, catalog)
    lists = top_n_lists(hybrid.augmented(), hybrid.base.user_ids, model_items, users,
                        serve.top_n, seen, available, memory_mb=serve.memory_mb,
                        device=device, rerank=rerank)
    cold = model_items.filter(hybrid.base.cold)
    popular = popularity_ranking(item_features, available, serve.top_n)
    lists = explain(lists, interactions, item_vectors, catalog, cold=cold,
                    popular=popular["item_id"].head(POPULAR_NOW))
    cold_rows = lists.filter(pl.col("item_id").is_in(cold.implode())).height
    return ShardLists(lists=lists, popular=popular, cold_rows=cold_rows)
