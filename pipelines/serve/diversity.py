"""Re-ranking a per-user candidate pool into the final list: MMR diversity and category caps.

The pool is what ``scoring.top_n`` returns with a larger n: item indices (users × pool, -1
padded) and scores (best first, -inf padded). Every function keeps the lists' contract: at most
n items, no repeats, scores non-increasing by rank, padding -1 / -inf.
"""

from __future__ import annotations

import numpy as np

# Bytes of MMR's working set per (user, pool slot), besides the slot's embedding (d float32):
# relevance, running max cosine and objective (4 + 4 + 4); the objective's two products, or the
# step's cosines and their clipped copy (4 + 4); the category codes and the gather's index
# (8 + 8); the valid, eligible, taken and same-category masks and the negations (4 + 2).
_MMR_SLOT_BYTES = 3 * 4 + 2 * 4 + 2 * 8 + 6
# The most working set one MMR block takes, whatever the budget allows.
CACHE_BLOCK_MIB = 16


def rerank(idx: np.ndarray, scores: np.ndarray, n: int, *, item_vecs: np.ndarray | None = None,
           mmr_lambda: float | None = None, categories: np.ndarray | None = None,
           max_per_category: int | None = None, memory_mb: float = 256,
           threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The final ``n`` per user from a candidate pool: (idx users × n, scores users × n).

    ``mmr_lambda`` (with ``item_vecs``, items × d): MMR re-ranking, see ``mmr`` (also for
    ``memory_mb`` and ``threads``); the scores returned are the MMR objective values.
    ``max_per_category`` (with ``categories``, one int code per item, -1 for none): at most that
    many items of one category per list, see ``cap_categories``. With both, the caps apply
    inside MMR's greedy loop: a candidate whose category is full is no longer eligible, so the
    diversity term compares with the list as it is kept. Without either, the pool's first ``n``.
    """
    idx, scores = _check_pool(idx, scores, n)
    if (mmr_lambda is None) != (item_vecs is None):
        raise ValueError("MMR needs both mmr_lambda and item_vecs")
    if (max_per_category is None) != (categories is None):
        raise ValueError("category caps need both max_per_category and categories")
    if mmr_lambda is not None:
        return mmr(idx, scores, n, item_vecs, mmr_lambda, categories=categories,
                   max_per_category=max_per_category, memory_mb=memory_mb, threads=threads)
    if max_per_category is not None:
        return cap_categories(idx, scores, n, categories, max_per_category)
    return _pad(idx[:, :n], scores[:, :n], n)


def mmr(idx: np.ndarray, scores: np.ndarray, n: int, item_vecs: np.ndarray, mmr_lambda: float,
        *, categories: np.ndarray | None = None, max_per_category: int | None = None,
        memory_mb: float = 256, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximal marginal relevance over each user's pool.

    Step by step, the candidate picked maximises ``λ·rel − (1−λ)·m``, where ``m`` is its highest
    cosine to the items already picked (−1, the least a cosine can be, while none are) and
    ``rel`` its score min-max normalised within the user's pool (1 for the best, 0 for the
    worst; all 1 if they are equal). Raw scores are dot products on a scale of their own, which
    differs per model and per user; on [0, 1] relevance weighs against cosines on [−1, 1] the
    same way for every user, so one λ means the same trade-off everywhere. λ = 1 keeps the pool's
    order; ties go to the earlier pool position.

    Users are taken in blocks that fit ``memory_mb`` together, ``threads`` blocks at once
    (default: the cores this process may run on).

    The score returned for a pick is its objective when it was picked. These never increase
    with rank: a candidate's ``m`` is a max over a growing set, so its objective can only fall
    from one step to the next, and each step's pick is the max over a set of candidates that
    only shrinks. Rounding keeps this, as float32 products and differences are monotone in
    ``m``. With caps, a candidate whose category is full stops being eligible, which shrinks
    the set further and keeps the argument intact.
    """
    if not 0.0 <= mmr_lambda <= 1.0:
        raise ValueError(f"mmr_lambda must lie in [0, 1], not {mmr_lambda}")
    idx, scores = _check_pool(idx, scores, n)
    vecs = np.asarray(item_vecs, dtype=np.float32)
    if vecs.ndim != 2:
        raise ValueError(f"item_vecs must be items × d, not {vecs.shape}")
    cats = None if categories is None else _check_categories(categories, max_per_category)
    n_users, pool = idx.shape
    idx_out = np.full((n_users, n), -1, dtype=np.int64)
    score_out = np.full((n_users, n), -np.inf, dtype=np.float32)
    steps = min(n, pool)
    if steps == 0 or n_users == 0:
        return idx_out, score_out
    if threads is None:
        from pipelines.core.devices import cpu_threads

        threads = cpu_threads()
    # The blocks in flight at once share the budget; each step reads all of a block's
    # embeddings, faster from cache (here: flat from 4 to 32 MiB a block, 1.4x slower at 64).
    block = min(mmr_block_users(pool, vecs.shape[1], memory_mb / threads),
                mmr_block_users(pool, vecs.shape[1], CACHE_BLOCK_MIB))

    def run(start: int) -> None:
        stop = min(start + block, n_users)
        _mmr_block(idx[start:stop], scores[start:stop], steps, vecs, np.float32(mmr_lambda),
                   cats, max_per_category, idx_out[start:stop], score_out[start:stop])

    starts = range(0, n_users, block)
    if threads == 1 or len(starts) == 1:
        for start in starts:
            run(start)
        return idx_out, score_out
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    # The step's products and masks release the GIL, so blocks run in parallel.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool_:
        list(pool_.map(run, starts))
    return idx_out, score_out


def mmr_block_users(pool: int, dim: int, memory_mb: float) -> int:
    """Users whose pools (embeddings gathered, users × pool × dim) MMR holds at once."""
    return max(1, int(memory_mb * 2**20 // (pool * (dim * 4 + _MMR_SLOT_BYTES))))


def _mmr_block(idx: np.ndarray, scores: np.ndarray, steps: int, vecs: np.ndarray,
               lam: np.float32, cats: np.ndarray | None, cap: int | None,
               idx_out: np.ndarray, score_out: np.ndarray) -> None:
    rows = np.arange(idx.shape[0])
    valid = _valid(idx, scores)
    rel = _relevance(scores, valid)
    # users × pool × d, each candidate as a unit vector (a zero vector stays zero).
    cand = vecs[np.where(valid, idx, 0)]
    norms = np.sqrt(np.einsum("upd,upd->up", cand, cand))
    cand /= np.where(norms > 0, norms, np.float32(1))[:, :, None]
    del norms
    item_cats = None if cats is None else np.where(valid, cats[np.where(valid, idx, 0)], -1)
    max_cos = np.full(idx.shape, -1.0, dtype=np.float32)
    taken = np.zeros(idx.shape, dtype=bool)
    eligible = valid.copy()
    for step in range(steps):
        objective = lam * rel - (np.float32(1) - lam) * max_cos
        objective[~eligible] = -np.inf
        pick = np.argmax(objective, axis=1)  # the first maximum: the earlier pool position
        value = objective[rows, pick]
        live = np.isfinite(value)
        if not live.any():
            return
        idx_out[live, step] = idx[rows[live], pick[live]]
        score_out[live, step] = value[live]
        taken[rows[live], pick[live]] = True
        eligible[rows[live], pick[live]] = False
        if step == steps - 1:
            return
        cos = np.matmul(cand, cand[rows, pick][:, :, None])[:, :, 0]
        np.maximum(max_cos, np.clip(cos, -1, 1), out=max_cos)
        if item_cats is not None:
            picked_cat = item_cats[rows, pick]
            same = item_cats == picked_cat[:, None]
            full = live & (picked_cat >= 0) & ((taken & same).sum(axis=1) >= cap)
            eligible &= ~(same & full[:, None])


def cap_categories(idx: np.ndarray, scores: np.ndarray, n: int, categories: np.ndarray,
                   max_per_category: int) -> tuple[np.ndarray, np.ndarray]:
    """Walk each pool in order and skip an item once ``max_per_category`` items of its category
    are in the list; items without a category (-1) are never skipped. Scores are kept, so they
    stay non-increasing."""
    idx, scores = _check_pool(idx, scores, n)
    cats = _check_categories(categories, max_per_category)
    valid = _valid(idx, scores)
    item_cats = np.where(valid, cats[np.where(valid, idx, 0)], -1)
    n_users, pool = idx.shape
    # Each entry's occurrence number among its row's entries of the same category, in pool
    # order: a stable sort by (row, category) keeps pool order within a run, and the count
    # runs from the start of each run.
    rows = np.repeat(np.arange(n_users), pool)
    flat_cats = item_cats.ravel()
    order = np.lexsort((flat_cats, rows))
    key_rows, key_cats = rows[order], flat_cats[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (key_rows[1:] != key_rows[:-1]) | (key_cats[1:] != key_cats[:-1])
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    occurrence = np.empty(len(order), dtype=np.int64)
    occurrence[order] = np.arange(len(order)) - run_start
    keep = valid & ((item_cats < 0) | (occurrence.reshape(n_users, pool) < max_per_category))
    # Kept entries first, in pool order.
    first = np.argsort(~keep, axis=1, kind="stable")[:, :n]
    kept = np.take_along_axis(keep, first, axis=1)
    return _pad(np.where(kept, np.take_along_axis(idx, first, axis=1), -1),
                np.where(kept, np.take_along_axis(scores, first, axis=1), -np.inf), n)


def _relevance(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scores min-max normalised per row over the valid entries; rows of equal scores get 1."""
    lo = np.min(np.where(valid, scores, np.inf), axis=1, keepdims=True)
    hi = np.max(np.where(valid, scores, -np.inf), axis=1, keepdims=True)
    some = np.isfinite(lo)
    span = np.where(some & (hi > lo), hi - lo, np.float32(1))
    rel = np.where(some & (hi > lo), (scores - np.where(some, lo, 0)) / span, np.float32(1))
    return np.where(valid, rel, np.float32(0)).astype(np.float32)


def _check_pool(idx: np.ndarray, scores: np.ndarray, n: int,
                ) -> tuple[np.ndarray, np.ndarray]:
    if n < 0:
        raise ValueError(f"n must be at least 0, not {n}")
    idx = np.asarray(idx)
    scores = np.asarray(scores, dtype=np.float32)
    if idx.ndim != 2 or idx.shape != scores.shape:
        raise ValueError(f"idx {idx.shape} and scores {scores.shape} must be users × pool")
    return idx.astype(np.int64, copy=False), scores


def _check_categories(categories: np.ndarray, max_per_category: int | None) -> np.ndarray:
    if max_per_category is None or max_per_category < 1:
        raise ValueError(f"max_per_category must be at least 1, not {max_per_category}")
    return np.asarray(categories, dtype=np.int64)


def _valid(idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Pool entries holding an item: not -1 padding, and a finite score."""
    return (idx >= 0) & np.isfinite(scores)


def _pad(idx: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """users × n: the first n entries, -1 / -inf where the pool had fewer or held padding."""
    out_idx = np.full((idx.shape[0], n), -1, dtype=np.int64)
    out_scores = np.full((idx.shape[0], n), -np.inf, dtype=np.float32)
    width = min(n, idx.shape[1])
    valid = _valid(idx[:, :width], scores[:, :width])
    out_idx[:, :width] = np.where(valid, idx[:, :width], -1)
    out_scores[:, :width] = np.where(valid, scores[:, :width], -np.inf)
    return out_idx, out_scores
