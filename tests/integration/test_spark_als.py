"""Spark MLlib ALS as a peer of implicit: an item Spark never saw keeps a zero row, and on
MovieLens 100K the two reach the same NDCG within a tolerance, both above popularity."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from pipelines.core.settings import ModelSettings
from pipelines.evaluate.metrics import ndcg_at_k
from pipelines.model.als import Factors, InteractionMatrix, build_matrix, fit_als
from pipelines.model.spark_als import fit_spark_als
from pipelines.serve.lists import popularity_lists, popularity_ranking, top_n_lists
from tests.contract.test_trainers import ALS, UNRATED, checkerboard, spark  # noqa: F401
from tests.support.workspace import shared_dataset

pytestmark = pytest.mark.slow


def test_an_item_spark_never_saw_keeps_a_zero_row(spark) -> None:  # noqa: F811
    inter, _ = checkerboard()
    data = build_matrix(inter, item_ids=pl.concat([inter["item_id"].unique(),
                                                   pl.Series([UNRATED])]))
    factors = fit_spark_als(data, ALS, spark)
    unrated = data.item_ids.to_list().index(UNRATED)
    norms = np.linalg.norm(factors.item, axis=1)
    assert norms[unrated] == 0 and np.delete(norms, unrated).min() > 0


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


def test_spark_ndcg_matches_implicit_on_ml100k(spark, ml100k_split) -> None:  # noqa: F811
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
