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
    TOPK_MARGIN,
    block_users_for,
    csr_from_pairs,
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
    # 10k items: 512 MB would allow thousands of users, the host cap keeps 8 MiB of scores.
    assert default_block_users(10_000, 100, memory_mb=512) == HOST_BLOCK_MIB * 2**20 // 40_000
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


# --- blocks and threads -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_blocks_and_threads_do_not_change_the_result(backend: str) -> None:
    rng = np.random.default_rng(0)
    users = small_integers(rng, 23, 3, 2)
    items = small_integers(rng, 40, 3, 2)
    seen = sp.random(23, 40, density=0.2, format="csr", random_state=0)
    mask = rng.random(40) > 0.1
    whole = top_n(users, items, 7, exclude=seen, item_mask=mask, block_users=23,
                  backend=backend)
    expected = reference(users, items, 7, banned=(seen.toarray() != 0) | ~mask)
    np.testing.assert_array_equal(whole[0], expected[0])
    np.testing.assert_array_equal(whole[1], expected[1])
    for block, threads in ((1, 1), (4, 1), (4, 2), (7, 3), (None, 2)):
        parts = top_n(users, items, 7, exclude=seen, item_mask=mask, block_users=block,
                      threads=threads, backend=backend)
        np.testing.assert_array_equal(whole[0], parts[0])
        np.testing.assert_array_equal(whole[1], parts[1])


# --- the torch backend against the NumPy one --------------------------------------------------

@pytest.mark.parametrize(("dim", "high"), [(1, 1), (2, 1), (3, 2), (8, 3)],
                         ids=["all-ties", "few-scores", "some-ties", "rare-ties"])
def test_torch_backend_equals_numpy_backend(dim: int, high: int) -> None:
    rng = np.random.default_rng(dim)
    users = small_integers(rng, 64, dim, high)
    items = small_integers(rng, 300, dim, high)
    seen = sp.random(64, 300, density=0.05, format="csr", random_state=dim)
    mask = rng.random(300) > 0.05
    for n in (1, 10, 50, 300):
        ours = top_n(users, items, n, exclude=seen, item_mask=mask, backend="numpy")
        theirs = top_n(users, items, n, exclude=seen, item_mask=mask, backend="torch",
                       block_users=16)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
        expected = reference(users, items, n, banned=(seen.toarray() != 0) | ~mask)
        np.testing.assert_array_equal(ours[0], expected[0])


def test_torch_ties_reaching_past_the_topk_window_go_to_the_lowest_indices() -> None:
    # Item 70 is best; the other 99 tie at 0, far more than the topk window's margin, so
    # topk's choice among them is arbitrary and the row must be finished by the NumPy rule.
    user = np.ones((1, 1), dtype=np.float32)
    items = np.zeros((100, 1), dtype=np.float32)
    items[70] = 1.0
    assert 3 + TOPK_MARGIN < 99  # the tie reaches past the window
    idx, scores = top_n(user, items, 3, backend="torch")
    assert idx.tolist() == [[70, 0, 1]]
    assert scores.tolist() == [[1.0, 0.0, 0.0]]


def test_torch_ties_inside_the_topk_window_are_ordered_by_item_index() -> None:
    # Item i scores -i, except item 55 (200) and items 90, 10, 40 (100 each): the cut falls
    # inside a tie that the topk window holds whole, so no row needs the NumPy rule.
    user = np.ones((1, 1), dtype=np.float32)
    items = -np.arange(100, dtype=np.float32).reshape(-1, 1)
    items[[90, 10, 40]] = 100.0
    items[55] = 200.0
    idx, scores = top_n(user, items, 3, backend="torch")
    assert idx.tolist() == [[55, 10, 40]]
    assert scores.tolist() == [[200.0, 100.0, 100.0]]


# --- exclusion, availability, padding ---------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_excluded_and_unavailable_items_are_never_recommended(backend: str) -> None:
    seen = csr_from_pairs(np.array([0, 1, 1]), np.array([0, 3, 1]), (2, 4))
    idx, scores = top_n(USERS, ITEMS, 2, exclude=seen, backend=backend)
    assert idx.tolist() == [[2, 1], [2, 0]]
    assert scores.tolist() == [[2, 1], [1, 0]]
    mask = np.array([False, True, True, True])
    idx, _ = top_n(USERS, ITEMS, 2, item_mask=mask, backend=backend)
    assert idx.tolist() == [[2, 1], [3, 1]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_with_too_few_items_are_padded(backend: str) -> None:
    # u0 may get nothing (everything seen); u1 has items 0 and 2 (1 and 3 unavailable).
    seen = csr_from_pairs(np.array([0, 0, 0, 0]), np.array([0, 1, 2, 3]), (2, 4))
    mask = np.array([True, False, True, False])
    idx, scores = top_n(USERS, ITEMS, 3, exclude=seen, item_mask=mask, backend=backend)
    assert idx.tolist() == [[-1, -1, -1], [2, 0, -1]]
    assert np.isneginf(scores[0]).all()
    assert scores[1, :2].tolist() == [1, 0] and np.isneginf(scores[1, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_n_larger_than_the_catalog_gives_the_whole_catalog(backend: str) -> None:
    idx, scores = top_n(USERS, ITEMS, 10, backend=backend)
    assert idx.tolist() == [[0, 2, 1, 3], [3, 1, 2, 0]]
    assert scores.tolist() == [[3, 2, 1, 0], [3, 2, 1, 0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_inputs_are_scored_in_float32(backend: str) -> None:
    idx, scores = top_n(USERS.astype(np.float64), ITEMS.astype(np.float64), 2, backend=backend)
    assert idx.dtype == np.int64 and scores.dtype == np.float32
    assert idx.tolist() == [[0, 2], [3, 1]]


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
