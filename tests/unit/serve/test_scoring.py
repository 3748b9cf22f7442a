"""The top-N engine: block size from the memory budget, blocks and threads that do not change
the result, and the torch backend (on the CPU here) against the NumPy one, ties included."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.serve.scoring import (
    HOST_BLOCK_MIB,
    PRODUCT_ROWS,
    block_users_for,
    default_block_users,
    resolve_backend,
    top_n,
)

BACKENDS = ["numpy", "torch"]

# Two users, four items in two dimensions. Scores (user · item):
#   u0 = (1, 0): items 0..3 -> 3, 1, 2, 0
#   u1 = (0, 1): items 0..3 -> 0, 2, 1, 3
USERS = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
ITEMS = np.array([[3.0, 0.0], [1.0, 2.0], [2.0, 1.0], [0.0, 3.0]], dtype=np.float32)


def reference(user_vecs: np.ndarray, item_vecs: np.ndarray, n: int,
              banned: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: a full sort of every row by (score desc, item index asc), banned = -inf."""
    scores = user_vecs.astype(np.float32) @ item_vecs.astype(np.float32).T
    if banned is not None:
        scores[banned] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    best = np.take_along_axis(scores, order, axis=1)
    return np.where(np.isfinite(best), order, -1), best


def small_integers(rng: np.random.Generator, rows: int, dim: int, high: int) -> np.ndarray:
    """Vectors whose dot products are exact in float32 and tie often."""
    return rng.integers(-high, high + 1, size=(rows, dim)).astype(np.float32)


# --- block size -------------------------------------------------------------------------------

def test_block_size_grows_with_the_budget_and_is_at_least_one() -> None:
    sizes = [block_users_for(50_000, mb, n=100, exclude_per_user=50) for mb in
             (0.001, 1, 8, 64, 512, 4096)]
    assert sizes[0] == 1
    assert sizes == sorted(sizes) and sizes[-1] > sizes[-2] > sizes[1]
    # Excluded items and wider lists cost memory too.
    assert block_users_for(10_000, 64, exclude_per_user=1000) < block_users_for(10_000, 64)
    assert block_users_for(10_000, 64, n=1000) < block_users_for(10_000, 64, n=10)
    assert block_users_for(1, 0.0) == 1
    # The torch path budgets for the device block and the host's exact rule together.
    assert block_users_for(10_000, 64, backend="torch") < block_users_for(10_000, 64)


def test_default_block_shares_the_budget_between_threads_and_stays_cache_sized() -> None:
    assert default_block_users(100_000, 100, memory_mb=64, threads=4) == \
        block_users_for(100_000, 16, n=100)
    # 1k items: 512 MB would allow thousands of users, the host cap keeps 8 MiB of scores.
    assert default_block_users(1_000, 100, memory_mb=512) == HOST_BLOCK_MIB * 2**20 // 4_000
    # 50k items: 8 MiB is 41 users, too few for an efficient product; the block keeps
    # PRODUCT_ROWS users and selects in cache-sized slices.
    assert default_block_users(50_000, 100, memory_mb=512) == PRODUCT_ROWS
    # ... unless the budget allows fewer.
    assert default_block_users(50_000, 100, memory_mb=64, threads=4) == \
        block_users_for(50_000, 16, n=100) < PRODUCT_ROWS
    # On a GPU only the budget counts.
    assert default_block_users(10_000, 100, memory_mb=512, backend="torch", device="cuda") == \
        block_users_for(10_000, 512, n=100, backend="torch")


def test_block_size_keeps_the_numpy_working_set_within_the_budget() -> None:
    # Scores with many ties at the cut, so the tie-breaking temporaries are allocated too.
    rng = np.random.default_rng(3)
    users = small_integers(rng, 300, 2, 1)
    items = small_integers(rng, 20_000, 2, 1)
    seen = sp.random(300, 20_000, density=0.01, format="csr", random_state=3)
    budget_mb = 4.0
    block = block_users_for(20_000, budget_mb, n=10, exclude_per_user=seen.nnz / 300)
    assert 1 < block < 300
    tracemalloc.start()
    try:
        idx, scores = top_n(users, items, 10, exclude=seen, block_users=block, threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    working_set = peak - idx.nbytes - scores.nbytes
    # Within the budget, and not so far under it that blocks are needlessly small.
    assert 0.5 * budget_mb * 2**20 < working_set <= budget_mb * 2**20


def test_default_block_size_respects_the_budget() -> None:
    rng = np.random.default_rng(4)
    users = rng.normal(size=(50, 4)).astype(np.float32)
    items = rng.normal(size=(5_000, 4)).astype(np.float32)
    whole = top_n(users, items, 5, block_users=50)
    tracemalloc.start()
    try:
        tiny = top_n(users, items, 5, memory_mb=0.25, threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 0.25 * 2**20
    np.testing.assert_array_equal(whole[0], tiny[0])


# --- API --------------------------------------------------------------------------------------

def test_backend_resolution() -> None:
    assert resolve_backend("auto", "cpu") == ("numpy", "cpu")
    assert resolve_backend("torch", "cpu") == ("torch", "cpu")
    assert resolve_backend("auto", "cuda") == ("torch", "cuda")
    with pytest.raises(ValueError, match="numpy backend runs on the CPU"):
        resolve_backend("numpy", "cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cupy", "cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_backend("auto", "tpu")


def test_shapes_are_checked_before_scoring() -> None:
    with pytest.raises(ValueError, match="same number of columns"):
        top_n(USERS, ITEMS[:, :1], 2)
    with pytest.raises(ValueError, match="exclude is"):
        top_n(USERS, ITEMS, 2, exclude=sp.csr_matrix((2, 5)))
    with pytest.raises(ValueError, match="item_mask"):
        top_n(USERS, ITEMS, 2, item_mask=np.ones(3, dtype=bool))


def test_the_numpy_path_does_not_import_torch() -> None:
    code = ("import sys, numpy as np; from pipelines.serve.scoring import top_n; "
            "top_n(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 2); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rank_scores_in_cache_sized_slices_equals_one_block(monkeypatch) -> None:
    import pipelines.serve.scoring as scoring

    rng = np.random.default_rng(4)
    scores = small_integers(rng, 37, 1, 3) * small_integers(rng, 1, 300, 3)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    whole = scoring.rank_scores(scores, 25)
    monkeypatch.setattr(scoring, "HOST_BLOCK_MIB", 1 / 1024)  # 1 KiB: 1 row of 300 floats
    assert scoring.cache_rows(300) == 1
    sliced = scoring.rank_scores(scores, 25)
    np.testing.assert_array_equal(sliced[0], whole[0])
    np.testing.assert_array_equal(sliced[1], whole[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :25]  # score desc, then index
    best = np.take_along_axis(scores, order, axis=1)
    np.testing.assert_array_equal(whole[0], np.where(np.isfinite(best), order, -1))


@pytest.mark.parametrize("kind", ["distinct", "ties", "mostly_banned", "all_equal"])
def test_the_nth_best_bound_gives_the_full_sort_rule(kind: str) -> None:
    from pipelines.serve.scoring import _nth_best, rank_scores

    rng = np.random.default_rng(5)
    scores = rng.normal(size=(40, 3000)).astype(np.float32)
    if kind == "ties":
        scores = np.round(scores * 2).astype(np.float32)  # a handful of values, many ties
    elif kind == "mostly_banned":
        scores[rng.random(scores.shape) < 0.995] = -np.inf
    elif kind == "all_equal":
        scores[:] = 0
    # 3,000 items make 47 segments: the bound is used for n = 10 (and for 'all_equal' the
    # ties send it to the partitioned copy).
    np.testing.assert_array_equal(_nth_best(scores, 10)[:, 0], -np.sort(-scores, axis=1)[:, 9])
    idx, best = rank_scores(scores, 10)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    want = np.take_along_axis(scores, order, axis=1)
    np.testing.assert_array_equal(idx, np.where(np.isfinite(want), order, -1))
    np.testing.assert_array_equal(best, want)


def test_a_row_with_nan_scores_does_not_borrow_the_next_rows() -> None:
    from pipelines.serve.scoring import _nth_best

    rng = np.random.default_rng(6)
    scores = rng.normal(size=(3, 3000)).astype(np.float32)
    scores[0, 5:] = np.nan  # five comparable scores left in row 0
    got = _nth_best(scores, 10)
    want = [np.partition(row, len(row) - 10)[len(row) - 10] for row in scores]
    # Row 0 has no 10th best (the partition's answer, NaN), rather than one of row 1's.
    np.testing.assert_array_equal(got[:, 0], want)
    assert np.isnan(got[0, 0])
