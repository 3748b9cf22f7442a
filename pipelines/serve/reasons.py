"""A short, true reason for each recommended row.

"similar to <title>": the item the user interacted with that is nearest to the recommended item
in embedding space, when that similarity is high enough; "new item like <title>" for a cold
item, which only its text brought; "popular now" for an item among the day's most popular
(popularity is one of the fused signals); otherwise the row came from the collaborative signal
alone and says so.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from pipelines.core.devices import cpu_threads

SIMILAR_MIN_COSINE = 0.5
MAX_SEEN_PER_USER = 50
COLLABORATIVE = "liked by people with similar taste"
POPULAR = "popular now"


def explain(lists: pl.DataFrame, interactions: pl.DataFrame, item_vecs: pl.DataFrame,
            catalog: pl.DataFrame, min_cosine: float = SIMILAR_MIN_COSINE,
            cold: pl.Series | None = None, popular: pl.Series | None = None,
            block_bytes: int = 2**26) -> pl.DataFrame:
    """``lists`` with a ``reason`` column (``item_vecs``: ``item_id, vector`` unit vectors).

    ``cold``: items recommended for their text alone (no or few interactions); they read "new
    item like <the nearest title the user interacted with>", whatever the similarity.
    ``popular``: the day's most popular items; they read "popular now" when no seen item is
    similar enough. ``block_bytes``: about the memory each block of users takes to compare
    (the reasons do not depend on it).
    """
    fallback = (pl.when(pl.col("item_id").is_in(popular.implode())).then(pl.lit(POPULAR))
                .otherwise(pl.lit(COLLABORATIVE)) if popular is not None
                else pl.lit(COLLABORATIVE))
    if lists.is_empty() or item_vecs.is_empty():
        return lists.with_columns(fallback.alias("reason"))
    index = item_vecs.select("item_id").with_row_index("_v")
    matrix = item_vecs.get_column("vector").to_numpy().astype(np.float32, copy=False)
    seen = (
        interactions.sort(["user_id", "confidence", "item_id"], descending=[False, True, False])
        .group_by("user_id", maintain_order=True).head(MAX_SEEN_PER_USER)
        .join(index, on="item_id").select("user_id", "_v")
    )
    is_cold = pl.col("item_id").is_in(cold.implode()) if cold is not None else pl.lit(False)
    recs = lists.with_row_index("_row").join(index, on="item_id", how="left",
                                             maintain_order="left").with_columns(
        is_cold.alias("_cold"))
    nearest = _nearest(recs.filter(pl.col("_v").is_not_null()), seen, matrix, min_cosine,
                       lists.height, block_bytes)
    titles = index.join(catalog.select("item_id", "title"), on="item_id", how="left")
    # -1 (no near item) matches no vector row.
    near_title = (pl.DataFrame({"_v": nearest})
                  .join(titles.select(pl.col("_v").cast(pl.Int64), "title"), on="_v",
                        how="left", maintain_order="left")["title"])
    return lists.with_columns(
        pl.when(near_title.is_not_null() & is_cold)
        .then(pl.format("new item like {}", near_title))
        .when(near_title.is_not_null())
        .then(pl.format("similar to {}", near_title))
        .otherwise(fallback)
        .alias("reason")
    )


def _nearest(recs: pl.DataFrame, seen: pl.DataFrame, matrix: np.ndarray, min_cosine: float,
             n_rows: int, block_bytes: int) -> np.ndarray:
    """Per list row (``recs``: ``_row, user_id, _v, _cold``), the vector row of the seen item
    (``seen``: ``user_id, _v``; of equal ones, the first) nearest to the listed one, when
    similar enough or cold; -1 otherwise. Users go a block at a time: a batch of products of
    each user's listed vectors and seen vectors."""
    nearest = np.full(n_rows, -1, dtype=np.int64)
    seen = seen.with_columns(pl.int_range(pl.len()).over("user_id").alias("_pos"))
    users = seen.select("user_id").unique(maintain_order=True).with_row_index("_s")
    recs = (recs.join(users, on="user_id").sort("_s", "_row")
            .with_columns(pl.int_range(pl.len()).over("_s").alias("_pos")))
    if recs.is_empty():
        return nearest
    seen = seen.join(users, on="user_id")
    n_users = users.height
    width = int(seen["_pos"].max()) + 1
    depth = int(recs["_pos"].max()) + 1
    # Each user's seen items, padded with -1.
    padded = np.full((n_users, width), -1, dtype=np.int64)
    padded[seen["_s"].to_numpy(), seen["_pos"].to_numpy()] = seen["_v"].to_numpy()
    s, pos = recs["_s"].to_numpy(), recs["_pos"].to_numpy()
    rows, cold = recs["_row"].to_numpy(), recs["_cold"].to_numpy()
    # And the vector rows of each user's list rows, padded with 0.
    listed = np.zeros((n_users, depth), dtype=np.int64)
    listed[s, pos] = recs["_v"].to_numpy()
    dim = matrix.shape[1]
    # The gathered vectors and the cosines of a block of users.
    block = max(1, block_bytes // (4 * ((depth + width) * dim + depth * width)))
    bounds = np.searchsorted(s, np.arange(0, n_users + block, block))

    def match(b: int) -> None:
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            return
        first = b * block
        have = padded[first:first + block]
        local = s[lo:hi] - first
        wanted = matrix[listed[first:first + block]]  # padding reads row 0, never used
        sims = np.matmul(wanted, matrix[have].transpose(0, 2, 1))  # padding: masked here
        sims[np.broadcast_to((have < 0)[:, None, :], sims.shape)] = -np.inf
        sims = sims[local, pos[lo:hi]]  # the list rows' cosines to their user's seen items
        best = sims.argmax(axis=1)
        ok = (sims[np.arange(len(best)), best] >= min_cosine) | cold[lo:hi]
        nearest[rows[lo:hi][ok]] = have[local[ok], best[ok]]

    # NumPy releases the GIL in the gathers and products: blocks run on every core, one
    # BLAS thread each. Each block writes its own rows.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(cpu_threads()) as pool:
        list(pool.map(match, range(len(bounds) - 1)))
    return nearest
