"""How one ``ModelSettings`` maps onto Spark MLlib's implicit-ALS loss (pure arithmetic, no
Spark session)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.model.als import build_matrix
from pipelines.model.spark_als import spark_ratings, spark_reg_param
from tests.contract.test_trainers import checkerboard


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
    inter, _ = checkerboard()
    matrix = build_matrix(inter).matrix   # 48 users, 24 items, 48 * 7 positives
    assert spark_reg_param(matrix, 1.0) == pytest.approx((48 + 24) / (2 * 48 * 7))
