"""Re-ranking a candidate pool: MMR and category caps on hand-computed pools, and the lists'
contract (no repeats, scores non-increasing by rank, -1 / -inf padding) on random ones."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.serve.diversity import cap_categories, mmr, mmr_block_users, rerank
from pipelines.serve.scoring import top_n

# Items 10..13 of a 14-item catalog: A, a near-duplicate A' (cosine 0.96 to A), B and C.
VECS = np.zeros((14, 3), dtype=np.float32)
VECS[10] = [1.0, 0.0, 0.0]    # A
VECS[11] = [0.96, 0.28, 0.0]  # A'
VECS[12] = [0.0, 1.0, 0.0]    # B
VECS[13] = [0.0, 0.0, 1.0]    # C
POOL = np.array([[10, 11, 12, 13]])
POOL_SCORES = np.array([[1.0, 0.95, 0.7, 0.5]], dtype=np.float32)


def test_lambda_one_keeps_the_pool_order() -> None:
    idx, scores = rerank(POOL, POOL_SCORES, 4, item_vecs=VECS, mmr_lambda=1.0)
    assert idx.tolist() == [[10, 11, 12, 13]]
    # The objective at λ = 1 is the relevance: (score − 0.5) / (1.0 − 0.5).
    np.testing.assert_allclose(scores, [[1.0, 0.9, 0.4, 0.0]], atol=1e-6)


def test_mmr_moves_a_near_duplicate_down() -> None:
    # rel = (score − 0.5) / 0.5 = 1.0, 0.9, 0.4, 0.0 for A, A', B, C; λ = 0.5, so the
    # objective is 0.5·rel − 0.5·m with m the highest cosine to the items picked (−1 at first).
    #   step 1: m = −1 for all: 1.0, 0.95, 0.7, 0.5                   -> A (1.0)
    #   step 2: m = cos to A = 0.96, 0, 0: A' 0.45 − 0.48 = −0.03,
    #           B 0.2 − 0 = 0.2, C 0 − 0 = 0                          -> B (0.2)
    #   step 3: A' m = max(0.96, 0.28) = 0.96: −0.03; C m = 0: 0.0    -> C (0.0)
    #   step 4:                                                       -> A' (−0.03)
    idx, scores = rerank(POOL, POOL_SCORES, 4, item_vecs=VECS, mmr_lambda=0.5)
    assert idx.tolist() == [[10, 12, 13, 11]]
    np.testing.assert_allclose(scores, [[1.0, 0.2, 0.0, -0.03]], atol=1e-6)
    top3, _ = rerank(POOL, POOL_SCORES, 3, item_vecs=VECS, mmr_lambda=0.5)
    assert top3.tolist() == [[10, 12, 13]]


def test_lambda_zero_spreads_as_far_as_possible() -> None:
    # λ = 0: the objective is −m. Step 1 ties at 1 for all, so the first (A) wins; then B and
    # C (m = 0) beat A' (m = 0.96), and B comes first in the pool; A' last.
    idx, scores = rerank(POOL, POOL_SCORES, 4, item_vecs=VECS, mmr_lambda=0.0)
    assert idx.tolist() == [[10, 12, 13, 11]]
    np.testing.assert_allclose(scores, [[1.0, 0.0, 0.0, -0.96]], atol=1e-6)


def test_category_caps_skip_overflow_in_pool_order() -> None:
    idx = np.array([[0, 1, 2, 3, 4, 5]])
    scores = np.array([[6, 5, 4, 3, 2, 1]], dtype=np.float32)
    categories = np.array([1, 1, -1, 1, 2, 2])  # item 2 has no category
    one = rerank(idx, scores, 5, categories=categories, max_per_category=1)
    assert one[0].tolist() == [[0, 2, 4, -1, -1]]
    assert one[1][0, :3].tolist() == [6, 4, 2] and np.isneginf(one[1][0, 3:]).all()
    two = rerank(idx, scores, 5, categories=categories, max_per_category=2)
    assert two[0].tolist() == [[0, 1, 2, 4, 5]]
    assert two[1].tolist() == [[6, 5, 4, 2, 1]]
    # Uncategorised items are never capped.
    none = rerank(idx, scores, 6, categories=np.full(6, -1), max_per_category=1)
    assert none[0].tolist() == [[0, 1, 2, 3, 4, 5]]


def test_category_caps_inside_mmr() -> None:
    # As in the MMR example, with A and A' in category 0, B in 1 and C uncategorised, one per
    # category: A is picked and closes category 0 (A' drops out), then B (0.2) beats C (0.0)
    # and closes category 1, then C; nothing is left for the fourth place.
    categories = np.array([-1] * 10 + [0, 0, 1, -1])
    idx, scores = rerank(POOL, POOL_SCORES, 4, item_vecs=VECS, mmr_lambda=0.5,
                         categories=categories, max_per_category=1)
    assert idx.tolist() == [[10, 12, 13, -1]]
    np.testing.assert_allclose(scores[:, :3], [[1.0, 0.2, 0.0]], atol=1e-6)
    assert np.isneginf(scores[0, 3])


@pytest.mark.parametrize("options", [
    {},
    {"item_vecs": VECS, "mmr_lambda": 0.7},
    {"categories": np.zeros(14, dtype=int), "max_per_category": 5},
], ids=["first-n", "mmr", "caps"])
def test_padding_in_the_pool_and_a_pool_narrower_than_n(options: dict) -> None:
    idx = np.array([[12, 10, -1], [-1, -1, -1]])
    scores = np.array([[2.0, 1.0, -np.inf], [-np.inf] * 3], dtype=np.float32)
    out_idx, out_scores = rerank(idx, scores, 5, **options)
    assert out_idx.tolist() == [[12, 10, -1, -1, -1], [-1] * 5]
    assert out_idx.dtype == np.int64 and out_scores.dtype == np.float32
    assert np.isfinite(out_scores[0, :2]).all()
    assert np.isneginf(out_scores[0, 2:]).all() and np.isneginf(out_scores[1]).all()


def test_equal_scores_get_full_relevance() -> None:
    idx = np.array([[10, 12]])
    scores = np.array([[3.0, 3.0]], dtype=np.float32)
    out_idx, out_scores = rerank(idx, scores, 2, item_vecs=VECS, mmr_lambda=0.5)
    # rel = 1 for both; B's cosine to A is 0: 0.5 − 0 = 0.5.
    assert out_idx.tolist() == [[10, 12]]
    np.testing.assert_allclose(out_scores, [[1.0, 0.5]], atol=1e-6)


def test_invalid_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="mmr_lambda and item_vecs"):
        rerank(POOL, POOL_SCORES, 2, mmr_lambda=0.5)
    with pytest.raises(ValueError, match="max_per_category and categories"):
        rerank(POOL, POOL_SCORES, 2, max_per_category=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rerank(POOL, POOL_SCORES, 2, item_vecs=VECS, mmr_lambda=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        rerank(POOL, POOL_SCORES, 2, categories=np.zeros(14, dtype=int), max_per_category=0)
    with pytest.raises(ValueError, match="users × pool"):
        rerank(POOL, POOL_SCORES[:, :2], 2)


def test_mmr_blocks_do_not_change_the_result_and_fit_the_budget() -> None:
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(500, 32)).astype(np.float32)
    idx, scores = top_n(rng.normal(size=(120, 32)).astype(np.float32), vecs, 200)
    whole = mmr(idx, scores, 20, vecs, 0.6, memory_mb=1024)
    budget_mb = 2.0
    assert 1 < mmr_block_users(200, 32, budget_mb) < 120
    tracemalloc.start()
    try:
        blocked = mmr(idx, scores, 20, vecs, 0.6, memory_mb=budget_mb, threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[1], blocked[1])
    threaded = mmr(idx, scores, 20, vecs, 0.6, memory_mb=budget_mb, threads=3)
    np.testing.assert_array_equal(whole[0], threaded[0])
    np.testing.assert_array_equal(whole[1], threaded[1])
    working_set = peak - blocked[0].nbytes - blocked[1].nbytes
    assert 0.5 * budget_mb * 2**20 < working_set <= budget_mb * 2**20


# --- the lists' contract on random pools ------------------------------------------------------

@st.composite
def pools(draw):
    """A pool from top_n over random small-integer vectors (so scores tie), with excluded items
    (so rows are padded), random categories and unit item vectors of a few directions."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 25))
    pool = draw(st.integers(1, 30))
    users = rng.integers(-2, 3, size=(n_users, 2)).astype(np.float32)
    items = rng.integers(-2, 3, size=(n_items, 2)).astype(np.float32)
    seen = rng.random((n_users, n_items)) < draw(st.sampled_from([0.0, 0.3, 0.9]))
    idx, scores = top_n(users, items, pool, exclude=sp.csr_matrix(seen))
    vecs = rng.integers(-1, 2, size=(n_items, 3)).astype(np.float32)
    categories = rng.integers(-1, draw(st.integers(0, 4)), size=n_items)
    return idx, scores, vecs, categories


def _check_contract(pool_idx: np.ndarray, out_idx: np.ndarray, out_scores: np.ndarray, n: int,
                    categories: np.ndarray | None = None, cap: int | None = None) -> None:
    """Items first then padding, no repeats, only pool items, scores non-increasing by rank,
    caps kept, and as many items as the pool and the caps allow."""
    assert out_idx.shape == out_scores.shape == (pool_idx.shape[0], n)
    for row_pool, row, row_scores in zip(pool_idx, out_idx, out_scores, strict=True):
        k = int((row >= 0).sum())
        assert (row[:k] >= 0).all() and (row[k:] == -1).all()
        assert np.isfinite(row_scores[:k]).all() and np.isneginf(row_scores[k:]).all()
        assert (np.diff(row_scores[:k]) <= 0).all(), row_scores
        picked = row[:k].tolist()
        available = row_pool[row_pool >= 0].tolist()
        assert len(set(picked)) == k and set(picked) <= set(available)
        if cap is None:
            assert k == min(n, len(available))
            continue
        per_category: dict[int, int] = {}
        for item in picked:
            per_category[categories[item]] = per_category.get(categories[item], 0) + 1
        assert all(count <= cap for code, count in per_category.items() if code >= 0)
        in_pool: dict[int, int] = {}
        for item in available:
            in_pool[categories[item]] = in_pool.get(categories[item], 0) + 1
        allowed = sum(count if code < 0 else min(cap, count) for code, count in in_pool.items())
        assert k == min(n, allowed)


@settings(max_examples=150, deadline=None)
@given(pools(), st.integers(0, 12), st.floats(0, 1), st.sampled_from([None, 1, 2]))
def test_mmr_lists_keep_the_contract(pool, n, lam, cap) -> None:
    idx, scores, vecs, categories = pool
    cats = None if cap is None else categories
    out_idx, out_scores = rerank(idx, scores, n, item_vecs=vecs, mmr_lambda=lam,
                                 categories=cats, max_per_category=cap)
    _check_contract(idx, out_idx, out_scores, n, cats, cap)


@settings(max_examples=100, deadline=None)
@given(pools(), st.integers(0, 12), st.sampled_from([None, 1, 2]))
def test_lambda_one_is_the_pool_order_or_the_cap_walk(pool, n, cap) -> None:
    idx, scores, vecs, categories = pool
    cats = None if cap is None else categories
    ours, _ = rerank(idx, scores, n, item_vecs=vecs, mmr_lambda=1.0, categories=cats,
                     max_per_category=cap)
    walk, walk_scores = rerank(idx, scores, n, categories=cats, max_per_category=cap)
    np.testing.assert_array_equal(ours, walk)
    _check_contract(idx, walk, walk_scores, n, cats, cap)
    if cap is None:
        width = min(n, idx.shape[1])
        np.testing.assert_array_equal(ours[:, :width], idx[:, :width])


def test_cap_categories_matches_a_loop_on_random_pools() -> None:
    rng = np.random.default_rng(9)
    idx, scores = top_n(rng.normal(size=(40, 4)).astype(np.float32),
                        rng.normal(size=(60, 4)).astype(np.float32), 30)
    categories = rng.integers(-1, 5, size=60)
    out, _ = cap_categories(idx, scores, 12, categories, 2)
    for row_pool, row in zip(idx, out, strict=True):
        counts: dict[int, int] = {}
        expected = []
        for item in row_pool:
            code = int(categories[item])
            if code >= 0 and counts.get(code, 0) >= 2:
                continue
            counts[code] = counts.get(code, 0) + 1
            expected.append(int(item))
        expected = (expected + [-1] * 12)[:12]
        assert row.tolist() == expected
