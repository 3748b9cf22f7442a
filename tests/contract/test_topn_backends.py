"""The top-N contract every scoring backend keeps (NumPy on the CPU, torch on the CPU, torch
on CUDA when there is one): best first, ties by item index, exclusions, padding, and results
that do not depend on blocks or threads."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.serve.scoring import TOPK_MARGIN, csr_from_pairs, top_n
from tests.unit.serve.test_scoring import reference, small_integers


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


BACKENDS = [
    pytest.param({"backend": "numpy", "device": "cpu"}, id="numpy"),
    pytest.param({"backend": "torch", "device": "cpu"}, id="torch-cpu"),
    pytest.param({"backend": "torch", "device": "cuda"}, id="torch-cuda",
                 marks=pytest.mark.skipif(not _cuda(), reason="no CUDA device")),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict:
    return request.param


# --- small cases with known answers ------------------------------------------------------------

# Two users, four items in two dimensions. Scores (user · item):
#   u0 = (1, 0): items 0..3 -> 3, 1, 2, 0
#   u1 = (0, 1): items 0..3 -> 0, 2, 1, 3
USERS = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
ITEMS = np.array([[3.0, 0.0], [1.0, 2.0], [2.0, 1.0], [0.0, 3.0]], dtype=np.float32)


def test_top_n_best_first(backend: dict) -> None:
    idx, scores = top_n(USERS, ITEMS, 3, **backend)
    assert idx.tolist() == [[0, 2, 1], [3, 1, 2]]
    assert scores.tolist() == [[3, 2, 1], [3, 2, 1]]
    assert idx.dtype == np.int64 and scores.dtype == np.float32




def test_top_n_pads_with_minus_one(backend: dict) -> None:
    # u0 has only item 2 left (0 seen, 1 and 3 masked); u1 has items 0 and 2.
    seen = csr_from_pairs(np.array([0]), np.array([0]), (2, 4))
    mask = np.array([True, False, True, False])
    idx, scores = top_n(USERS, ITEMS, 3, exclude=seen, item_mask=mask, **backend)
    assert idx.tolist() == [[2, -1, -1], [2, 0, -1]]
    assert scores[0, 0] == 2 and np.isneginf(scores[0, 1:]).all()
    assert scores[1].tolist()[:2] == [1, 0] and np.isneginf(scores[1, 2])



def test_top_n_all_ties_ordered_by_item_index(backend: dict) -> None:
    user = np.ones((1, 1), dtype=np.float32)
    items = np.zeros((6, 1), dtype=np.float32)
    assert top_n(user, items, 6, **backend)[0].tolist() == [[0, 1, 2, 3, 4, 5]]
    assert top_n(user, items, 3, **backend)[0].tolist() == [[0, 1, 2]]


def test_top_n_ties_at_the_cut_are_broken_by_item_index(backend: dict) -> None:
    # Item 7 is best; the other nine tie. The docstring promises ties by item index, so the
    # top 3 must be 7, 0, 1 — not whichever tied items the partial sort happened to keep.
    user = np.ones((1, 1), dtype=np.float32)
    items = np.zeros((10, 1), dtype=np.float32)
    items[7] = 1.0
    idx, scores = top_n(user, items, 3, **backend)
    assert scores.tolist() == [[1.0, 0.0, 0.0]]
    assert idx.tolist() == [[7, 0, 1]]



def test_top_n_no_users(backend: dict) -> None:
    idx, scores = top_n(np.zeros((0, 2), dtype=np.float32), ITEMS, 3, **backend)
    assert idx.shape == (0, 3) and scores.shape == (0, 3)


# --- blocks and threads -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_blocks_and_threads_do_not_change_the_result(backend: dict) -> None:
    rng = np.random.default_rng(0)
    users = small_integers(rng, 23, 3, 2)
    items = small_integers(rng, 40, 3, 2)
    seen = sp.random(23, 40, density=0.2, format="csr", random_state=0)
    mask = rng.random(40) > 0.1
    whole = top_n(users, items, 7, exclude=seen, item_mask=mask, block_users=23,
                  **backend)
    expected = reference(users, items, 7, banned=(seen.toarray() != 0) | ~mask)
    np.testing.assert_array_equal(whole[0], expected[0])
    np.testing.assert_array_equal(whole[1], expected[1])
    for block, threads in ((1, 1), (4, 1), (4, 2), (7, 3), (None, 2)):
        parts = top_n(users, items, 7, exclude=seen, item_mask=mask, block_users=block,
                      threads=threads, **backend)
        np.testing.assert_array_equal(whole[0], parts[0])
        np.testing.assert_array_equal(whole[1], parts[1])


# --- against a brute-force sort, ties included ---------------------------------------------

@pytest.mark.parametrize(("dim", "high"), [(1, 1), (2, 1), (3, 2), (8, 3)],
                         ids=["all-ties", "few-scores", "some-ties", "rare-ties"])
def test_equals_the_brute_force_sort(backend: dict, dim: int, high: int) -> None:
    rng = np.random.default_rng(dim)
    users = small_integers(rng, 64, dim, high)
    items = small_integers(rng, 300, dim, high)
    seen = sp.random(64, 300, density=0.05, format="csr", random_state=dim)
    mask = rng.random(300) > 0.05
    for n in (1, 10, 50, 300):
        got = top_n(users, items, n, exclude=seen, item_mask=mask, block_users=16, **backend)
        expected = reference(users, items, n, banned=(seen.toarray() != 0) | ~mask)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_ties_reaching_far_past_the_cut_go_to_the_lowest_indices(backend: dict) -> None:
    # Item 70 is best; the other 99 tie at 0, far more than torch's topk window margin, so
    # topk's choice among them is arbitrary and the row must be finished by the NumPy rule.
    user = np.ones((1, 1), dtype=np.float32)
    items = np.zeros((100, 1), dtype=np.float32)
    items[70] = 1.0
    assert 3 + TOPK_MARGIN < 99  # the tie reaches past the window
    idx, scores = top_n(user, items, 3, **backend)
    assert idx.tolist() == [[70, 0, 1]]
    assert scores.tolist() == [[1.0, 0.0, 0.0]]


def test_ties_inside_a_short_run_at_the_cut_are_ordered_by_item_index(backend: dict) -> None:
    # Item i scores -i, except item 55 (200) and items 90, 10, 40 (100 each): the cut falls
    # inside a tie that torch's topk window holds whole, so no row needs the NumPy rule.
    user = np.ones((1, 1), dtype=np.float32)
    items = -np.arange(100, dtype=np.float32).reshape(-1, 1)
    items[[90, 10, 40]] = 100.0
    items[55] = 200.0
    idx, scores = top_n(user, items, 3, **backend)
    assert idx.tolist() == [[55, 10, 40]]
    assert scores.tolist() == [[200.0, 100.0, 100.0]]


# --- exclusion, availability, padding ---------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_excluded_and_unavailable_items_are_never_recommended(backend: dict) -> None:
    seen = csr_from_pairs(np.array([0, 1, 1]), np.array([0, 3, 1]), (2, 4))
    idx, scores = top_n(USERS, ITEMS, 2, exclude=seen, **backend)
    assert idx.tolist() == [[2, 1], [2, 0]]
    assert scores.tolist() == [[2, 1], [1, 0]]
    mask = np.array([False, True, True, True])
    idx, _ = top_n(USERS, ITEMS, 2, item_mask=mask, **backend)
    assert idx.tolist() == [[2, 1], [3, 1]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_with_too_few_items_are_padded(backend: dict) -> None:
    # u0 may get nothing (everything seen); u1 has items 0 and 2 (1 and 3 unavailable).
    seen = csr_from_pairs(np.array([0, 0, 0, 0]), np.array([0, 1, 2, 3]), (2, 4))
    mask = np.array([True, False, True, False])
    idx, scores = top_n(USERS, ITEMS, 3, exclude=seen, item_mask=mask, **backend)
    assert idx.tolist() == [[-1, -1, -1], [2, 0, -1]]
    assert np.isneginf(scores[0]).all()
    assert scores[1, :2].tolist() == [1, 0] and np.isneginf(scores[1, 2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_n_larger_than_the_catalog_gives_the_whole_catalog(backend: dict) -> None:
    idx, scores = top_n(USERS, ITEMS, 10, **backend)
    assert idx.tolist() == [[0, 2, 1, 3], [3, 1, 2, 0]]
    assert scores.tolist() == [[3, 2, 1, 0], [3, 2, 1, 0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_inputs_are_scored_in_float32(backend: dict) -> None:
    idx, scores = top_n(USERS.astype(np.float64), ITEMS.astype(np.float64), 2, **backend)
    assert idx.dtype == np.int64 and scores.dtype == np.float32
    assert idx.tolist() == [[0, 2], [3, 1]]


