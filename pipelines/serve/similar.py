"""Similar items ("more like this"): each item's nearest available items by the model's item
vectors, for item pages.

The vectors are ALS's item factors, which every item of the model has: cold items get theirs
from their embedding through the content map (``retrieval.fit_content_map``), so a new item
has neighbours on its first night and appears among others'. Nearness is the cosine of the
factors; ties go to the lower item index (``scoring.top_n``), so a rerun gives the same rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from pipelines.model.retrieval import Retrieval, unit_rows
from pipelines.serve.scoring import top_n

CO_LIKED = "liked by the same users"
BY_TEXT = "similar description"  # one of the two has no interactions of its own yet


def similar_items(ret: Retrieval, catalog: pl.DataFrame, k: int, memory_mb: float,
                  device: str = "cpu") -> pl.DataFrame:
    """``item_id, rank, similar_item_id, score, reason``: up to ``k`` per item of the model
    with a vector, never itself, only items available in ``catalog`` (``item_id, available``),
    ranks contiguous from 1 and scores non-increasing."""
    schema = {"item_id": pl.String, "rank": pl.Int32, "similar_item_id": pl.String,
              "score": pl.Float64, "reason": pl.String}
    vectors = unit_rows(np.asarray(ret.item_factors, dtype=np.float32))
    has_vector = np.abs(vectors).sum(axis=1) > 0
    available = (pl.DataFrame({"item_id": ret.item_ids})
                 .join(catalog.select("item_id", "available"), on="item_id", how="left",
                       maintain_order="left")["available"].fill_null(False).to_numpy())
    sources = np.flatnonzero(has_vector)
    if k == 0 or not len(sources):
        return pl.DataFrame(schema=schema)
    itself = sp.csr_matrix((np.ones(len(sources), dtype=np.float32),
                            (np.arange(len(sources)), sources)),
                           shape=(len(sources), ret.n_items))
    idx, scores = top_n(vectors[sources], vectors, k, exclude=itself,
                        item_mask=available & has_vector, memory_mb=memory_mb, device=device)
    found = (idx >= 0) & np.isfinite(scores)
    rows, ranks = np.nonzero(found)  # row-major: each item's neighbours in rank order
    source, target = sources[rows], idx[found]
    warm = np.asarray(ret.als_warm, dtype=bool)
    ids = ret.item_ids
    return pl.DataFrame({
        "item_id": ids.gather(source),
        "rank": (ranks + 1).astype(np.int32),
        "similar_item_id": ids.gather(target),
        "score": scores[found].astype(np.float64),
        "reason": np.where(warm[source] & warm[target], CO_LIKED, BY_TEXT),
    }, schema=schema)
