"""Lists as frames: padding dropped, seen pairs, popularity lists and the interaction matrix
(the top-N engine itself is tested in tests/contract)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.core.contracts import REC_SCHEMA
from pipelines.model.als import build_matrix
from pipelines.serve.lists import (
    lists_frame,
    popularity_lists,
    popularity_ranking,
    seen_matrix,
)

# --- frames -----------------------------------------------------------------------------------

def test_lists_frame_drops_padding() -> None:
    idx = np.array([[2, -1], [0, 1]])
    scores = np.array([[0.5, -np.inf], [0.9, 0.1]], dtype=np.float32)
    frame = lists_frame(pl.Series(["a", "b"]), pl.Series(["x", "y", "z"]), idx, scores)
    assert frame.schema == pl.Schema(REC_SCHEMA)
    assert frame.select("user_id", "rank", "item_id").rows() == [
        ("a", 1, "z"), ("b", 1, "x"), ("b", 2, "y"),
    ]
    assert frame["score"].to_list() == pytest.approx([0.5, 0.9, 0.1])


def test_seen_matrix_ignores_unknown_ids() -> None:
    seen = pl.DataFrame({"user_id": ["b", "a", "a", "zz"], "item_id": ["x", "y", "y", "x"]})
    m = seen_matrix(seen, pl.Series(["a", "b"]), pl.Series(["x", "y", "q"]))
    assert m.shape == (2, 3)
    assert m.toarray().tolist() == [[0, 1, 0], [1, 0, 0]]


POPULARITY = pl.DataFrame({"item_id": ["a", "b", "c", "d", "e"],
                           "popularity": [5.0, 9.0, 5.0, 1.0, 7.0]})


def test_popularity_ranking() -> None:
    ranking = popularity_ranking(POPULARITY, None, 4)
    # b 9, e 7, then a and c tie at 5 (by item id), d cut by n
    assert ranking.rows() == [(1, "b", 9.0), (2, "e", 7.0), (3, "a", 5.0), (4, "c", 5.0)]
    only = popularity_ranking(POPULARITY, pl.Series(["d", "a", "c"]), 10)
    assert only.rows() == [(1, "a", 5.0), (2, "c", 5.0), (3, "d", 1.0)]


def test_popularity_lists_exclude_seen_and_rerank() -> None:
    ranking = popularity_ranking(POPULARITY, None, 5)   # b, e, a, c, d
    seen = pl.DataFrame({"user_id": ["u1", "u1", "u9"], "item_id": ["b", "a", "e"]})
    got = popularity_lists(ranking, pl.Series(["u2", "u1", "u1"]), 3, seen)
    assert got.schema == pl.Schema(REC_SCHEMA)
    assert got.select("user_id", "rank", "item_id").rows() == [
        ("u1", 1, "e"), ("u1", 2, "c"), ("u1", 3, "d"),
        ("u2", 1, "b"), ("u2", 2, "e"), ("u2", 3, "a"),
    ]
    assert got.filter(pl.col("user_id") == "u1")["score"].to_list() == [7.0, 5.0, 1.0]


def test_popularity_lists_without_seen_and_short_ranking() -> None:
    ranking = popularity_ranking(POPULARITY, None, 2)
    got = popularity_lists(ranking, pl.Series(["u1"]), 5, None)
    assert got.select("rank", "item_id").rows() == [(1, "b"), (2, "e")]


# --- interaction matrix -----------------------------------------------------------------------

def _interactions(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String,
                                      "confidence": pl.Float64}, orient="row")


def test_build_matrix_shape_and_id_order() -> None:
    inter = _interactions([("u2", "b", 1.5), ("u1", "c", 2.0), ("u2", "a", 0.5),
                           ("u3", "a", 0.0)])   # zero confidence: not a row
    data = build_matrix(inter)
    assert data.user_ids.to_list() == ["u1", "u2"]
    assert data.item_ids.to_list() == ["a", "b", "c"]
    assert data.matrix.shape == (2, 3)
    assert data.matrix.dtype == np.float32
    assert data.matrix.toarray().tolist() == [[0, 0, 2.0], [0.5, 1.5, 0]]


def test_build_matrix_with_catalog_columns() -> None:
    inter = _interactions([("u1", "b", 1.0), ("u1", "gone", 3.0)])
    data = build_matrix(inter, item_ids=pl.Series(["d", "b", "a"]))
    assert data.item_ids.to_list() == ["a", "b", "d"]
    assert data.matrix.toarray().tolist() == [[0, 1.0, 0]]
