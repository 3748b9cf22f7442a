"""A short, true reason for each recommended row.

"similar to <title>": the item the user interacted with that is nearest to the recommended item
in embedding space, when that similarity is high enough; "new item like <title>" for a cold
item, which only its text brought; "popular now" for an item among the day's most popular
(popularity is one of the fused signals); otherwise the row came from the collaborative signal
alone and says so.
"""

from __future__ import annotations

import numpy as np
import polars as pl

SIMILAR_MIN_COSINE = 0.5
MAX_SEEN_PER_USER = 50
COLLABORATIVE = "liked by people with similar taste"
POPULAR = "popular now"


def explain(lists: pl.DataFrame, interactions: pl.DataFrame, item_vecs: pl.DataFrame,
            catalog: pl.DataFrame, min_cosine: float = SIMILAR_MIN_COSINE,
            cold: pl.Series | None = None, popular: pl.Series | None = None) -> pl.DataFrame:
    """``lists`` with a ``reason`` column (``item_vecs``: ``item_id, vector`` unit vectors).

    ``cold``: items recommended for their text alone (no or few interactions); they read "new
    item like <the nearest title the user interacted with>", whatever the similarity.
    ``popular``: the day's most popular items; they read "popular now" when no seen item is
    similar enough.
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
    seen_by_user = {u: g["_v"].to_numpy() for (u,), g in seen.group_by("user_id")}
    nearest = np.full(lists.height, -1, dtype=np.int64)
    for (user,), group in recs.filter(pl.col("_v").is_not_null()).group_by("user_id"):
        candidates = seen_by_user.get(user)
        if candidates is None or candidates.size == 0:
            continue
        sims = matrix[group["_v"].to_numpy()] @ matrix[candidates].T
        best = sims.argmax(axis=1)
        ok = (sims[np.arange(len(best)), best] >= min_cosine) | group["_cold"].to_numpy()
        nearest[group["_row"].to_numpy()[ok]] = candidates[best[ok]]
    titles = index.join(catalog.select("item_id", "title"), on="item_id", how="left",
                        maintain_order="left")
    near_title = pl.Series(
        [None] * lists.height, dtype=pl.String
    ).scatter(np.flatnonzero(nearest >= 0),
              titles["title"].gather(nearest[nearest >= 0]))
    return lists.with_columns(
        pl.when(near_title.is_not_null() & is_cold)
        .then(pl.format("new item like {}", near_title))
        .when(near_title.is_not_null())
        .then(pl.format("similar to {}", near_title))
        .otherwise(fallback)
        .alias("reason")
    )
