"""Implicit-feedback ALS on the confidence matrix (``implicit``'s CPU or GPU implementation)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from pipelines.core.devices import implicit_has_cuda  # noqa: F401
from pipelines.core.settings import ModelSettings


@dataclass(frozen=True)
class InteractionMatrix:
    """A users × items CSR matrix of confidences with the ids of its rows and columns."""

    matrix: sp.csr_matrix
    user_ids: pl.Series
    item_ids: pl.Series


def build_matrix(interactions: pl.DataFrame, item_ids: pl.Series | None = None,
                 ) -> InteractionMatrix:
    """Rows: users with interactions (sorted); columns: ``item_ids`` (default: interacted items).

    Interactions with items outside ``item_ids`` are left out, so columns can be the catalog.
    """
    inter = interactions.filter(pl.col("confidence") > 0)
    users = inter.get_column("user_id").unique().sort()
    items = (item_ids if item_ids is not None else inter.get_column("item_id")).unique().sort()
    u_idx = pl.DataFrame({"user_id": users, "_u": np.arange(users.len(), dtype=np.int32)})
    i_idx = pl.DataFrame({"item_id": items, "_i": np.arange(items.len(), dtype=np.int32)})
    coo = inter.join(u_idx, on="user_id").join(i_idx, on="item_id")
    matrix = sp.csr_matrix(
        (coo["confidence"].to_numpy().astype(np.float32),
         (coo["_u"].to_numpy(), coo["_i"].to_numpy())),
        shape=(users.len(), items.len()),
    )
    return InteractionMatrix(matrix=matrix, user_ids=users, item_ids=items)


@dataclass(frozen=True)
class Factors:
    user: np.ndarray  # users × factors, float32
    item: np.ndarray  # items × factors, float32


def fit_als(data: InteractionMatrix, cfg: ModelSettings, use_gpu: bool = False) -> Factors:
    """Fit a fresh model (implicit crashes when one model is refitted on another shape)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; nested BLAS threads only oversubscribe.
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=cfg.factors, regularization=cfg.regularization, alpha=cfg.alpha,
            iterations=cfg.iterations, random_state=cfg.seed, use_gpu=use_gpu,
        )
        # implicit's bar over iterations, on a terminal only.
        model.fit(data.matrix, show_progress=sys.stderr.isatty())
    if use_gpu:
        model = model.to_cpu()
    return Factors(user=np.asarray(model.user_factors, dtype=np.float32),
                   item=np.asarray(model.item_factors, dtype=np.float32))
