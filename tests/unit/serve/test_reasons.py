"""A short, true reason per row: the nearest seen title, "new item like" for cold items,
"popular now" for the day's chart, the collaborative signal otherwise."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.serve.reasons import COLLABORATIVE, POPULAR, explain


def _vectors(key: str, rows: dict[str, list[float]]) -> pl.DataFrame:
    return pl.DataFrame({key: list(rows)}).with_columns(pl.Series(
        "vector", np.array(list(rows.values()), dtype=np.float32),
        dtype=pl.Array(pl.Float32, len(next(iter(rows.values()))))))


def test_reasons_are_true_to_where_a_row_came_from() -> None:
    lists = pl.DataFrame({"user_id": ["u1"] * 3, "rank": [1, 2, 3], "item_id": ["x", "y", "z"],
                          "score": [3.0, 2.0, 1.0]})
    interactions = pl.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"],
                                 "confidence": [2.0, 1.0]})
    vecs = _vectors("item_id", {"a": [1.0, 0.0], "b": [0.0, 1.0], "x": [0.96, 0.28],
                                "y": [-0.6, -0.8], "z": [-0.28, 0.0]})
    catalog = pl.DataFrame({"item_id": ["a", "b", "x", "y", "z"],
                            "title": ["Alpha", "Beta", "Ex", "Why", "Zed"]})
    got = explain(lists, interactions, vecs, catalog, cold=pl.Series(["z"]))
    assert got["reason"].to_list() == ["similar to Alpha", COLLABORATIVE, "new item like Beta"]


def test_popular_items_without_a_similar_seen_item_read_popular_now() -> None:
    lists = pl.DataFrame({"user_id": ["u1"] * 3, "rank": [1, 2, 3], "item_id": ["x", "y", "w"],
                          "score": [3.0, 2.0, 1.0]})
    interactions = pl.DataFrame({"user_id": ["u1"], "item_id": ["a"], "confidence": [2.0]})
    vecs = _vectors("item_id", {"a": [1.0, 0.0], "x": [0.96, 0.28], "y": [-0.6, -0.8],
                                "w": [0.0, 1.0]})
    catalog = pl.DataFrame({"item_id": ["a", "x", "y", "w"],
                            "title": ["Alpha", "Ex", "Why", "Dub"]})
    # x is popular too, but its similarity to Alpha is the more specific reason
    got = explain(lists, interactions, vecs, catalog, popular=pl.Series(["x", "y"]))
    assert got["reason"].to_list() == ["similar to Alpha", POPULAR, COLLABORATIVE]
