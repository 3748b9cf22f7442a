"""Top-N per user from dot-product scores, in user blocks, excluding seen and unavailable items."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_n(user_vecs: np.ndarray, item_vecs: np.ndarray, n: int,
          exclude: sp.csr_matrix | None = None, item_mask: np.ndarray | None = None,
          block_users: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the best ``n`` items per user, best first.

    ``exclude``: users × items, non-zero where an item must not be recommended to that user;
    ``item_mask``: True for items that may be recommended at all. Ties are broken by item
    index so the result is deterministic. Rows with fewer eligible items are padded with -1.
    """
    n_users, n_items = user_vecs.shape[0], item_vecs.shape[0]
    n = min(n, n_items)
    idx_out = np.full((n_users, n), -1, dtype=np.int64)
    score_out = np.full((n_users, n), -np.inf, dtype=np.float32)
    if n == 0 or n_users == 0:
        return idx_out, score_out
    blocked = np.zeros(n_items, dtype=bool) if item_mask is None else ~item_mask
    for start in range(0, n_users, block_users):
        stop = min(start + block_users, n_users)
        scores = user_vecs[start:stop] @ item_vecs.T
        scores[:, blocked] = -np.inf
        if exclude is not None:
            rows = exclude[start:stop].tocoo()
            scores[rows.row, rows.col] = -np.inf
        part = _select_n(scores, n)
        part_scores = np.take_along_axis(scores, part, axis=1)
        # Sort by score descending, then item index ascending.
        order = np.lexsort((part, -part_scores), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        best_scores = np.take_along_axis(part_scores, order, axis=1)
        valid = np.isfinite(best_scores)
        idx_out[start:stop] = np.where(valid, best, -1)
        score_out[start:stop] = np.where(valid, best_scores, -np.inf)
    return idx_out, score_out


def _select_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Per row, the indices of the ``n`` best scores; ties at the cut go to the lowest indices.

    ``argpartition`` alone keeps an arbitrary subset of the items tied at the cut (common:
    items without interactions all score 0), which would make lists depend on the platform.
    """
    threshold = -np.partition(-scores, n - 1, axis=1)[:, n - 1:n]
    above = scores > threshold
    tied = scores == threshold
    room = n - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return np.nonzero(chosen)[1].reshape(scores.shape[0], n)


def csr_from_pairs(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    data = np.ones(len(rows), dtype=np.int8)
    return sp.csr_matrix((data, (rows, cols)), shape=shape)
