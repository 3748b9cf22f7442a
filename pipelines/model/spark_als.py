"""Implicit-feedback ALS on Spark MLlib, behind the interface of
:func:`pipelines.model.als.fit_als`.

The two trainers take the same ``InteractionMatrix`` and ``ModelSettings`` and return the same
``Factors``, so recommending, evaluating and publishing do not care which one ran. Their losses
differ in two places, mapped here so that one ``ModelSettings`` means (nearly) the same model:

* Confidence. ``implicit`` 0.7.3 weighs an observed cell by ``alpha * r`` (not ``1 + alpha * r``;
  it only multiplies the matrix by alpha), Spark by ``1 + alpha * r``. Spark is therefore given
  ``r - 1 / alpha``, which makes the weights equal; see :func:`spark_ratings`.
* Regularisation. ``implicit`` adds a plain ``lambda * I`` to every normal equation; Spark adds
  ``regParam * n * I``, with ``n`` the row's number of positive cells (ALS-WR). See
  :func:`spark_reg_param`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from pipelines.core.settings import ModelSettings
from pipelines.model.als import Factors, InteractionMatrix

USER, ITEM, RATING = "user", "item", "rating"
# Stands in for a positive rating that maps to Spark's zero, which Spark would read as "no
# preference": it keeps the cell a positive with weight ~1.
TINY_RATING = 1e-6


def spark_ratings(confidence: np.ndarray, alpha: float) -> np.ndarray:
    """Ratings ``r'`` with Spark's weight ``1 + alpha * |r'|`` equal to implicit's ``alpha * |r|``.

    The preference (1 for a positive cell, 0 for a negative one) is kept. Where implicit's weight
    is below 1 (``alpha * |r| < 1``), which Spark cannot express, the weight becomes 1: the
    cell's preference counts as much as an unobserved cell's absence does.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be positive for Spark ALS, got {alpha}")
    shifted = np.abs(confidence) - 1.0 / alpha
    positive = np.maximum(shifted, TINY_RATING)
    negative = -np.maximum(shifted, 0.0)
    return np.where(confidence > 0, positive, negative).astype(np.float32)


def spark_reg_param(matrix: sp.csr_matrix, regularization: float) -> float:
    """Spark's ``regParam`` giving the same total penalty as implicit's ``regularization``.

    implicit's penalty is ``lambda * (sum |x_u|^2 + sum |y_i|^2)``; Spark's is
    ``regParam * (sum n_u |x_u|^2 + sum n_i |y_i|^2)``. With factor norms of one size the two
    agree when ``regParam = lambda * (users + items) / (2 * positives)``, i.e. lambda over the
    harmonic mean of the average user and item counts. Heavy users and popular items still get
    more shrinkage in Spark, and light ones less, so the models are comparable, not identical.
    """
    n_users, n_items = matrix.shape
    positives = max(int((matrix.data > 0).sum()), 1)
    return regularization * (n_users + n_items) / (2.0 * positives)


def _ratings_table(data: InteractionMatrix, alpha: float) -> pa.Table:
    coo = data.matrix.tocoo()
    keep = coo.data != 0  # an explicit zero is no interaction in implicit either
    return pa.table({
        USER: pa.array(coo.row[keep].astype(np.int32)),
        ITEM: pa.array(coo.col[keep].astype(np.int32)),
        RATING: pa.array(spark_ratings(coo.data[keep], alpha)),
    })


def _dense(factors_df, n_rows: int, rank: int) -> np.ndarray:
    """Rows by index; an index Spark never saw (no interactions) stays a zero vector."""
    table = factors_df.toArrow()
    out = np.zeros((n_rows, rank), dtype=np.float32)
    if table.num_rows:
        ids = table.column("id").to_numpy()
        values = table.column("features").combine_chunks().flatten().to_numpy()
        out[ids] = values.reshape(-1, rank)
    return out


def _ensure_checkpoint_dir(spark) -> None:
    """Give a local session a checkpoint folder (removed at exit) when it has none.

    Spark ALS cuts its lineage every ``checkpointInterval`` (10) iterations only where the context
    has a checkpoint folder; without one, 20 iterations overflow the JVM stack when a task is
    serialised. On a cluster the folder must be shared storage, which only the entry point knows
    (``spark.checkpoint.dir``), so there a missing one is an error.
    """
    context = spark.sparkContext
    if context.getCheckpointDir() is not None:
        return
    if not context.master.startswith("local"):
        raise ValueError(
            f"Spark ALS on {context.master} needs a checkpoint folder on shared storage: "
            "set spark.checkpoint.dir"
        )
    folder = tempfile.mkdtemp(prefix="spark-als-checkpoints-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    context.setCheckpointDir(folder)


def fit_spark_als(data: InteractionMatrix, cfg: ModelSettings, spark) -> Factors:
    """Fit Spark MLlib's implicit ALS; factor rows follow ``data.user_ids`` / ``data.item_ids``."""
    from pyspark.ml.recommendation import ALS

    _ensure_checkpoint_dir(spark)
    ratings = spark.createDataFrame(_ratings_table(data, cfg.alpha))
    # One block per core: more blocks only add shuffle overhead in local mode.
    blocks = spark.sparkContext.defaultParallelism
    als = ALS(
        rank=cfg.factors, maxIter=cfg.iterations, alpha=cfg.alpha, seed=cfg.seed,
        regParam=spark_reg_param(data.matrix, cfg.regularization),
        implicitPrefs=True, nonnegative=False, numUserBlocks=blocks, numItemBlocks=blocks,
        userCol=USER, itemCol=ITEM, ratingCol=RATING,
    )
    model = als.fit(ratings)
    n_users, n_items = data.matrix.shape
    return Factors(user=_dense(model.userFactors, n_users, cfg.factors),
                   item=_dense(model.itemFactors, n_items, cfg.factors))
