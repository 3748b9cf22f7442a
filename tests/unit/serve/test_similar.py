"""Similar items on hand-set item vectors: the nearest available items by cosine, never the
item itself, ties to the lower index, and a reason that says whether both have users."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl
import pytest

from pipelines.core.settings import ModelSettings, RetrievalSettings
from pipelines.model.als import fit_als
from pipelines.model.retrieval import fit_retrieval
from pipelines.serve.similar import BY_TEXT, CO_LIKED, similar_items
from tests.support.worlds import as_of

D = date(2026, 3, 10)
EVENTS = [("u1", "a", date(2026, 3, 1)), ("u1", "b", date(2026, 3, 2)),
          ("u2", "c", date(2026, 3, 3)), ("u2", "d", date(2026, 3, 4))]
CATALOG = pl.DataFrame({"item_id": list("abcdef"),
                        "available": [True, True, True, False, True, True]})


@pytest.fixture(scope="module")
def ret():
    vectors = {i: [1.0, 0.0] for i in "abcdef"}
    fitted = fit_retrieval(as_of(EVENTS, D, vectors, {}, catalog=list("abcdef")),
                           RetrievalSettings(cold_min_users=1),
                           lambda data: fit_als(data, ModelSettings(factors=2, iterations=2)))
    # Known factors: e is cold (mapped from its text), f has no vector at all.
    factors = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8], [2, 0], [0, 0]], np.float32)
    return dataclasses.replace(fitted, item_factors=factors,
                               als_warm=np.array([True, True, True, True, False, False]))


def test_the_nearest_available_items_by_cosine_with_their_reason(ret) -> None:
    assert ret.item_ids.to_list() == list("abcdef")
    got = similar_items(ret, CATALOG, k=2, memory_mb=16)
    rows = {(r["item_id"], r["rank"]): (r["similar_item_id"], round(r["score"], 4), r["reason"])
            for r in got.iter_rows(named=True)}
    assert rows == {
        ("a", 1): ("e", 1.0, BY_TEXT), ("a", 2): ("b", 0.8, CO_LIKED),
        ("b", 1): ("a", 0.8, CO_LIKED), ("b", 2): ("e", 0.8, BY_TEXT),  # a tie: lower index
        ("c", 1): ("b", 0.6, CO_LIKED), ("c", 2): ("a", 0.0, CO_LIKED),  # d is unavailable
        ("d", 1): ("b", 0.96, CO_LIKED), ("d", 2): ("c", 0.8, CO_LIKED),  # d still has a page
        ("e", 1): ("a", 1.0, BY_TEXT), ("e", 2): ("b", 0.8, BY_TEXT),
    }  # f has no vector: no page and nobody's neighbour
    assert got.schema["rank"] == pl.Int32


def test_fewer_candidates_than_k_and_none_asked(ret) -> None:
    got = similar_items(ret, CATALOG, k=10, memory_mb=16)
    # Five items with a vector, four of them available: four for d, three for the others.
    assert got.group_by("item_id").len().sort("item_id")["len"].to_list() == [3, 3, 3, 4, 3]
    assert similar_items(ret, CATALOG, k=0, memory_mb=16).is_empty()
