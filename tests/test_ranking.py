"""Top-N scoring, popularity lists, the interaction matrix and a checkerboard ALS test."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.core.contracts import REC_SCHEMA
from pipelines.core.settings import ModelSettings
from pipelines.model.als import Factors, build_matrix, fit_als
from pipelines.serve.lists import (
    lists_frame,
    popularity_lists,
    popularity_ranking,
    seen_matrix,
    top_n_lists,
)
from pipelines.serve.scoring import csr_from_pairs, top_n

# --- top_n ------------------------------------------------------------------------------------

# Two users, four items in two dimensions. Scores (user · item):
#   u0 = (1, 0): items 0..3 -> 3, 1, 2, 0
#   u1 = (0, 1): items 0..3 -> 0, 2, 1, 3
USERS = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
ITEMS = np.array([[3.0, 0.0], [1.0, 2.0], [2.0, 1.0], [0.0, 3.0]], dtype=np.float32)


def test_top_n_best_first() -> None:
    idx, scores = top_n(USERS, ITEMS, 3)
    assert idx.tolist() == [[0, 2, 1], [3, 1, 2]]
    assert scores.tolist() == [[3, 2, 1], [3, 2, 1]]
    assert idx.dtype == np.int64 and scores.dtype == np.float32


def test_top_n_excludes_seen_items() -> None:
    seen = csr_from_pairs(np.array([0, 1, 1]), np.array([0, 3, 1]), (2, 4))
    idx, scores = top_n(USERS, ITEMS, 2, exclude=seen)
    assert idx.tolist() == [[2, 1], [2, 0]]
    assert scores.tolist() == [[2, 1], [1, 0]]


def test_top_n_excludes_masked_items() -> None:
    mask = np.array([False, True, True, True])
    idx, _ = top_n(USERS, ITEMS, 2, item_mask=mask)
    assert idx.tolist() == [[2, 1], [3, 1]]


def test_top_n_pads_with_minus_one() -> None:
    # u0 has only item 2 left (0 seen, 1 and 3 masked); u1 has items 0 and 2.
    seen = csr_from_pairs(np.array([0]), np.array([0]), (2, 4))
    mask = np.array([True, False, True, False])
    idx, scores = top_n(USERS, ITEMS, 3, exclude=seen, item_mask=mask)
    assert idx.tolist() == [[2, -1, -1], [2, 0, -1]]
    assert scores[0, 0] == 2 and np.isneginf(scores[0, 1:]).all()
    assert scores[1].tolist()[:2] == [1, 0] and np.isneginf(scores[1, 2])


def test_top_n_n_larger_than_catalog() -> None:
    idx, _ = top_n(USERS, ITEMS, 10)
    assert idx.shape == (2, 4)
    assert idx.tolist() == [[0, 2, 1, 3], [3, 1, 2, 0]]


def test_top_n_all_ties_ordered_by_item_index() -> None:
    user = np.ones((1, 1), dtype=np.float32)
    items = np.zeros((6, 1), dtype=np.float32)
    assert top_n(user, items, 6)[0].tolist() == [[0, 1, 2, 3, 4, 5]]
    assert top_n(user, items, 3)[0].tolist() == [[0, 1, 2]]


def test_top_n_ties_at_the_cut_are_broken_by_item_index() -> None:
    # Item 7 is best; the other nine tie. The docstring promises ties by item index, so the
    # top 3 must be 7, 0, 1 — not whichever tied items the partial sort happened to keep.
    user = np.ones((1, 1), dtype=np.float32)
    items = np.zeros((10, 1), dtype=np.float32)
    items[7] = 1.0
    idx, scores = top_n(user, items, 3)
    assert scores.tolist() == [[1.0, 0.0, 0.0]]
    assert idx.tolist() == [[7, 0, 1]]


def test_top_n_blocks_do_not_change_the_result() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(size=(7, 3)).astype(np.float32)
    v = rng.normal(size=(9, 3)).astype(np.float32)
    seen = csr_from_pairs(np.array([0, 3, 6]), np.array([1, 2, 8]), (7, 9))
    whole = top_n(u, v, 4, exclude=seen)
    for block in (1, 2, 5):
        parts = top_n(u, v, 4, exclude=seen, block_users=block)
        np.testing.assert_array_equal(whole[0], parts[0])
        np.testing.assert_array_equal(whole[1], parts[1])
    # Brute force: the full argsort, best first, seen items removed.
    scores = u @ v.T
    scores[[0, 3, 6], [1, 2, 8]] = -np.inf
    np.testing.assert_array_equal(whole[0], np.argsort(-scores, axis=1, kind="stable")[:, :4])


def test_top_n_no_users() -> None:
    idx, scores = top_n(np.zeros((0, 2), dtype=np.float32), ITEMS, 3)
    assert idx.shape == (0, 3) and scores.shape == (0, 3)


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


# --- ALS --------------------------------------------------------------------------------------

N_GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP = 3, 16, 8
# Observed cells weigh alpha * confidence in implicit's loss and unobserved ones 1, so a
# confidence of 5 makes interactions count more than absences. Some regularization keeps 8
# factors from memorising each user's own zero on the withheld item (with 0.01 the margin is
# seed-dependent and sometimes negative).
ALS = ModelSettings(factors=8, iterations=20, regularization=1.0, alpha=1.0, seed=7)
CONFIDENCE = 5.0


def _checkerboard() -> tuple[pl.DataFrame, dict[str, str]]:
    """Users of group g interact with every item of group g but one, withheld per user."""
    rows, withheld = [], {}
    for g in range(N_GROUPS):
        for u in range(USERS_PER_GROUP):
            user = f"g{g}u{u:02d}"
            held = u % ITEMS_PER_GROUP
            withheld[user] = f"g{g}i{held}"
            rows += [(user, f"g{g}i{i}", CONFIDENCE)
                     for i in range(ITEMS_PER_GROUP) if i != held]
    return _interactions(rows), withheld


@pytest.fixture(scope="module")
def checkerboard() -> tuple[pl.DataFrame, dict[str, str], Factors]:
    inter, withheld = _checkerboard()
    return inter, withheld, fit_als(build_matrix(inter), ALS)


def test_als_ranks_withheld_same_group_item_first(checkerboard) -> None:
    inter, withheld, factors = checkerboard
    data = build_matrix(inter)
    assert factors.user.shape == (N_GROUPS * USERS_PER_GROUP, ALS.factors)
    assert factors.item.shape == (N_GROUPS * ITEMS_PER_GROUP, ALS.factors)
    recs = top_n_lists(factors, data.user_ids, data.item_ids, data.user_ids, n=5, seen=inter)
    assert recs.schema == pl.Schema(REC_SCHEMA)
    assert recs.join(inter, on=["user_id", "item_id"]).is_empty()  # nothing seen comes back
    top = dict(recs.filter(pl.col("rank") == 1).select("user_id", "item_id").iter_rows())
    assert top == withheld
    # The withheld item beats every item of another group.
    for user, lst in recs.group_by("user_id"):
        group = user[0][:2]
        ranked = lst.sort("rank")
        assert ranked["item_id"][0].startswith(group)
        assert not any(i.startswith(group) for i in ranked["item_id"][1:])


def test_als_withheld_item_scores_above_other_groups(checkerboard) -> None:
    inter, withheld, factors = checkerboard
    data = build_matrix(inter)
    items = data.item_ids.to_list()
    scores = factors.user @ factors.item.T
    for u, user in enumerate(data.user_ids.to_list()):
        group = user[:2]
        held = scores[u, items.index(withheld[user])]
        others = [scores[u, i] for i, item in enumerate(items) if not item.startswith(group)]
        assert held > max(others)


def test_als_lists_unknown_users_and_availability(checkerboard) -> None:
    inter, withheld, factors = checkerboard
    data = build_matrix(inter)
    user = "g0u00"
    available = pl.Series([i for i in data.item_ids.to_list() if i != withheld[user]])
    recs = top_n_lists(factors, data.user_ids, data.item_ids, pl.Series([user, "stranger"]), n=3,
                     seen=inter,
                     available=available)
    assert recs["user_id"].unique().to_list() == [user]
    assert withheld[user] not in recs["item_id"].to_list()
    assert recs["rank"].to_list() == [1, 2, 3]


def test_same_seed_same_factors(checkerboard) -> None:
    inter, _, factors = checkerboard
    again = fit_als(build_matrix(inter), ALS)
    np.testing.assert_array_equal(factors.user, again.user)
    np.testing.assert_array_equal(factors.item, again.item)
    assert factors.user.dtype == np.float32


def test_embedding_model_ranks_by_cosine_to_the_interest_vector() -> None:
    from pipelines.core.settings import Settings
    from pipelines.evaluate.holdout import evaluation_lists
    from pipelines.model.als import fit_als
    from pipelines.model.hybrid import AsOf

    def vectors(key: str, rows: dict[str, list[float]]) -> pl.DataFrame:
        return pl.DataFrame({key: list(rows)}).with_columns(pl.Series(
            "vector", np.array(list(rows.values()), dtype=np.float32),
            dtype=pl.Array(pl.Float32, 2)))

    train = AsOf(
        interactions=pl.DataFrame({"user_id": ["u1", "u2", "u2"], "item_id": ["a", "b", "c"],
                                   "confidence": [1.0, 1.0, 1.0]}),
        items=pl.DataFrame({"item_id": ["a", "b", "c"], "n_users": [1, 1, 1],
                            "popularity": [1.0, 1.0, 1.0], "trend": [1.0, 1.0, 1.0]}),
        users=pl.DataFrame({"user_id": ["u1", "u2"], "n_events": [1, 2]}),
        item_vectors=vectors("item_id", {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.8, 0.6]}),
        interest=vectors("user_id", {"u1": [1.0, 0.0]}),  # u2 has no interest memory yet
    )
    truth = pl.DataFrame({"user_id": ["u1", "u2"], "item_id": ["c", "a"]})
    settings = Settings()
    lists, _ = evaluation_lists(train, None, truth, settings,
                                lambda data: fit_als(data, settings.model))
    got = lists["embedding"]
    # u1 saw a: c (cosine 0.8) comes before b (0); u2 gets nothing without a vector.
    assert got.select("user_id", "rank", "item_id").rows() == [("u1", 1, "c"), ("u1", 2, "b")]
    np.testing.assert_allclose(got["score"], [0.8, 0.0], atol=1e-6)
    assert {"popularity", "als", "als_content", "hybrid"} <= set(lists)
    no_memory = AsOf(**{**train.__dict__, "interest": None})
    assert "embedding" not in evaluation_lists(no_memory, None, truth, settings,
                                               lambda data: fit_als(data, settings.model))[0]
