"""Spark MLlib ALS behind the ``fit_als`` interface: the checkerboard, row alignment, and parity
with ``implicit`` on MovieLens 100K."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from pipelines.core.settings import ModelSettings, SparkSettings
from pipelines.evaluate.metrics import ndcg_at_k
from pipelines.model.als import Factors, InteractionMatrix, build_matrix, fit_als
from pipelines.model.spark_als import fit_spark_als, spark_ratings, spark_reg_param
from pipelines.serve.lists import popularity_lists, popularity_ranking, top_n_lists
from tests.conftest import shared_dataset
from tests.test_ranking import ALS, ITEMS_PER_GROUP, N_GROUPS, USERS_PER_GROUP, _checkerboard

pytestmark = pytest.mark.slow

UNRATED = "zz-unrated"  # a catalog item nobody interacted with


@pytest.fixture(scope="module")
def spark():
    from pipelines.core.spark import spark_session

    with spark_session(SparkSettings(master="local[2]", shuffle_partitions=4), "test") as session:
        yield session


@pytest.fixture(scope="module")
def checkerboard(spark) -> tuple[pl.DataFrame, dict[str, str], InteractionMatrix, Factors]:
    inter, withheld = _checkerboard()
    catalog = pl.concat([inter.get_column("item_id").unique(), pl.Series([UNRATED])])
    data = build_matrix(inter, item_ids=catalog)
    return inter, withheld, data, fit_spark_als(data, ALS, spark)


# --- the mapping onto Spark's loss -----------------------------------------------------------

def test_spark_weights_equal_implicit_weights() -> None:
    alpha = 2.0
    confidence = np.array([5.0, 0.75, 0.5, 0.25, -3.0, -0.25], dtype=np.float32)
    rating = spark_ratings(confidence, alpha)
    # implicit weighs a cell by alpha * |c|, Spark by 1 + alpha * |r|; preferences follow signs.
    np.testing.assert_allclose((1 + alpha * np.abs(rating))[[0, 1, 4]],
                               (alpha * np.abs(confidence))[[0, 1, 4]], rtol=1e-6)
    assert (rating[:4] > 0).all() and (rating[4:] <= 0).all()
    # Below implicit's weight of 1 a positive keeps weight ~1; a weak negative becomes "unseen".
    assert 0 < rating[2] == rating[3] < 1e-5
    assert rating[5] == 0
    with pytest.raises(ValueError, match="alpha"):
        spark_ratings(confidence, 0.0)


def test_reg_param_matches_the_total_penalty() -> None:
    inter, _ = _checkerboard()
    matrix = build_matrix(inter).matrix   # 48 users, 24 items, 48 * 7 positives
    assert spark_reg_param(matrix, 1.0) == pytest.approx((48 + 24) / (2 * 48 * 7))


# --- the checkerboard (same data and settings as the implicit test in test_ranking) ------------

def test_spark_factors_follow_the_matrix_rows(checkerboard) -> None:
    _, _, data, factors = checkerboard
    assert factors.user.shape == (N_GROUPS * USERS_PER_GROUP, ALS.factors)
    assert factors.item.shape == (N_GROUPS * ITEMS_PER_GROUP + 1, ALS.factors)
    assert factors.user.dtype == factors.item.dtype == np.float32
    # Spark never sees the unrated item: its row is zero, every other row is not.
    unrated = data.item_ids.to_list().index(UNRATED)
    norms = np.linalg.norm(factors.item, axis=1)
    assert norms[unrated] == 0 and np.delete(norms, unrated).min() > 0


def test_spark_ranks_withheld_same_group_item_first(checkerboard) -> None:
    inter, withheld, data, factors = checkerboard
    recs = top_n_lists(factors, data.user_ids, data.item_ids, data.user_ids, n=3, seen=inter)
    top = dict(recs.filter(pl.col("rank") == 1).select("user_id", "item_id").iter_rows())
    assert top == withheld
    items = data.item_ids.to_list()
    scores = factors.user @ factors.item.T
    for u, user in enumerate(data.user_ids.to_list()):
        others = [scores[u, i] for i, item in enumerate(items) if not item.startswith(user[:2])]
        assert scores[u, items.index(withheld[user])] > max(others)


# --- MovieLens 100K: Spark against implicit ---------------------------------------------------

# Both trainers get these settings; regularization is implicit's lambda (Spark's is mapped).
ML_ALS = ModelSettings(factors=32, iterations=15, regularization=5.0, alpha=1.0, seed=42)
# Measured on seeds 0-4: implicit 0.207-0.221, Spark 0.218-0.238; the two differ by up to 10%
# (a seed changes either by as much). 15% leaves room without hiding a broken mapping: Spark
# with the unmapped regParam=5 gives all-zero factors and NDCG 0.
RELATIVE_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def ml100k_split() -> tuple[pl.DataFrame, pl.DataFrame, InteractionMatrix]:
    """Train on the first 90% of ratings in time; truth: later ratings >= 4 by known users on
    known items. Confidence = the rating itself, low ratings included."""
    from pipelines.datasets.movielens import load_movielens, time_split

    train, truth = time_split(load_movielens(shared_dataset("ml-100k")).ratings)
    return train, truth, build_matrix(train)


def _ndcg(factors: Factors, train: pl.DataFrame, truth: pl.DataFrame,
          data: InteractionMatrix) -> float:
    recs = top_n_lists(factors, data.user_ids, data.item_ids, truth["user_id"], n=10, seen=train)
    return ndcg_at_k(recs, truth, 10)


def test_spark_ndcg_matches_implicit_on_ml100k(spark, ml100k_split) -> None:
    train, truth, data = ml100k_split
    start = time.perf_counter()
    implicit = _ndcg(fit_als(data, ML_ALS), train, truth, data)
    mid = time.perf_counter()
    spark_ndcg = _ndcg(fit_spark_als(data, ML_ALS, spark), train, truth, data)
    end = time.perf_counter()
    print(f"NDCG@10 implicit {implicit:.4f} ({mid - start:.1f}s), "
          f"spark {spark_ndcg:.4f} ({end - mid:.1f}s)")

    popularity = train.group_by("item_id").agg(popularity=pl.len().cast(pl.Float64))
    pop_recs = popularity_lists(popularity_ranking(popularity, None, 500), truth["user_id"], 10,
                                train)
    baseline = ndcg_at_k(pop_recs, truth, 10)   # 0.142: both must have learned more than that
    assert min(implicit, spark_ndcg) > baseline
    assert abs(spark_ndcg - implicit) <= RELATIVE_TOLERANCE * implicit
