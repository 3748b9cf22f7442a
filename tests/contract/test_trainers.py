"""The contract every ALS trainer keeps behind ``InteractionMatrix -> Factors`` (implicit on the
CPU, Spark MLlib, implicit on the GPU when it was built with CUDA): factor rows follow the
matrix, the same seed gives the same factors, and on a checkerboard with a known answer the
item withheld from each user's own group is ranked first."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from pipelines.core.devices import implicit_has_cuda
from pipelines.core.settings import ModelSettings, SparkSettings
from pipelines.model.als import Factors, InteractionMatrix, build_matrix, fit_als
from pipelines.serve.lists import top_n_lists

N_GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP = 3, 16, 8
# Observed cells weigh alpha * confidence in implicit's loss and unobserved ones 1, so a
# confidence of 5 makes interactions count more than absences. Some regularization keeps 8
# factors from memorising each user's own zero on the withheld item (with 0.01 the margin is
# seed-dependent and sometimes negative).
ALS = ModelSettings(factors=8, iterations=20, regularization=1.0, alpha=1.0, seed=7)
CONFIDENCE = 5.0
UNRATED = "zz-unrated"  # a catalog item nobody interacted with

Fit = Callable[[InteractionMatrix], Factors]


def checkerboard() -> tuple[pl.DataFrame, dict[str, str]]:
    """Users of group g interact with every item of group g but one, withheld per user."""
    rows, withheld = [], {}
    for g in range(N_GROUPS):
        for u in range(USERS_PER_GROUP):
            user = f"g{g}u{u:02d}"
            held = u % ITEMS_PER_GROUP
            withheld[user] = f"g{g}i{held}"
            rows += [(user, f"g{g}i{i}", CONFIDENCE)
                     for i in range(ITEMS_PER_GROUP) if i != held]
    inter = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String,
                                       "confidence": pl.Float64}, orient="row")
    return inter, withheld


@pytest.fixture(scope="module")
def spark():
    from pipelines.core.spark import spark_session

    with spark_session(SparkSettings(master="local[2]", shuffle_partitions=4), "test") as session:
        yield session


TRAINERS = [
    pytest.param("implicit-cpu"),
    pytest.param("spark_als", marks=pytest.mark.slow),
    pytest.param("implicit-gpu", marks=pytest.mark.skipif(
        not implicit_has_cuda(), reason="implicit was built without CUDA or sees no GPU")),
]


@pytest.fixture(scope="module", params=TRAINERS)
def trainer(request: pytest.FixtureRequest) -> Fit:
    if request.param == "spark_als":
        from pipelines.model.spark_als import fit_spark_als

        session = request.getfixturevalue("spark")
        return lambda data: fit_spark_als(data, ALS, session)
    use_gpu = request.param == "implicit-gpu"
    return lambda data: fit_als(data, ALS, use_gpu=use_gpu)


@pytest.fixture(scope="module")
def fitted(trainer: Fit) -> tuple[pl.DataFrame, dict[str, str], InteractionMatrix, Factors]:
    inter, withheld = checkerboard()
    catalog = pl.concat([inter.get_column("item_id").unique(), pl.Series([UNRATED])])
    data = build_matrix(inter, item_ids=catalog)
    return inter, withheld, data, trainer(data)


def test_factor_rows_follow_the_matrix(fitted) -> None:
    _, _, data, factors = fitted
    assert factors.user.shape == (N_GROUPS * USERS_PER_GROUP, ALS.factors)
    assert factors.item.shape == (N_GROUPS * ITEMS_PER_GROUP + 1, ALS.factors)
    assert factors.user.dtype == factors.item.dtype == np.float32
    assert np.isfinite(factors.user).all() and np.isfinite(factors.item).all()


def test_withheld_same_group_item_ranks_first(fitted) -> None:
    inter, withheld, data, factors = fitted
    recs = top_n_lists(factors, data.user_ids, data.item_ids, data.user_ids, n=5, seen=inter)
    assert recs.join(inter, on=["user_id", "item_id"]).is_empty()  # nothing seen comes back
    top = dict(recs.filter(pl.col("rank") == 1).select("user_id", "item_id").iter_rows())
    assert top == withheld


def test_withheld_item_scores_above_every_other_group(fitted) -> None:
    _, withheld, data, factors = fitted
    items = data.item_ids.to_list()
    scores = factors.user @ factors.item.T
    for u, user in enumerate(data.user_ids.to_list()):
        others = [scores[u, i] for i, item in enumerate(items)
                  if not item.startswith(user[:2]) and item != UNRATED]
        assert scores[u, items.index(withheld[user])] > max(others)


def test_unknown_users_get_no_list_and_unavailable_items_stay_out(fitted) -> None:
    inter, withheld, data, factors = fitted
    user = "g0u00"
    available = pl.Series([i for i in data.item_ids.to_list() if i != withheld[user]])
    recs = top_n_lists(factors, data.user_ids, data.item_ids, pl.Series([user, "stranger"]),
                       n=3, seen=inter, available=available)
    assert recs["user_id"].unique().to_list() == [user]
    assert withheld[user] not in recs["item_id"].to_list()
    assert recs["rank"].to_list() == [1, 2, 3]


def test_same_seed_same_factors(fitted, trainer: Fit) -> None:
    _, _, data, factors = fitted
    again = trainer(data)
    np.testing.assert_array_equal(factors.user, again.user)
    np.testing.assert_array_equal(factors.item, again.item)
