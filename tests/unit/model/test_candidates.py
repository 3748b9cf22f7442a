"""Candidate generation reads each generator's top K from its own structure (a sparse product,
one global popularity order, a dense block only for dot products). Here it is checked pair for
pair and feature for feature against the plain definition: every generator's full users x
items score block, ranked by ``rank_scores`` where the generator has evidence."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from pipelines.core.settings import ModelSettings, RetrievalSettings
from pipelines.model.als import fit_als
from pipelines.model.ranker import (
    COLD,
    FEATURES,
    NEW,
    _features,
    best_of_rows,
    candidates,
)
from pipelines.model.retrieval import GENERATORS, ITEM_STATS, PERSONAL, fit_retrieval
from pipelines.serve.scoring import rank_scores
from tests.support.worlds import as_of

START = date(2026, 5, 1)


def _reference_ranks(scores: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    masked = np.where(eligible, scores, -np.inf)
    idx, best = rank_scores(masked, min(k, masked.shape[1]))
    ranks = np.full(scores.shape, k, dtype=np.int32)
    for r in range(len(scores)):
        for j in range(idx.shape[1]):
            if idx[r, j] >= 0 and np.isfinite(best[r, j]):
                ranks[r, idx[r, j]] = j
    return ranks


def reference(ret, rows, k, new_item_days, exclude=None, item_mask=None, use_interest=True):
    """Every source's dense ranks, their union, and the features at it."""
    banned = np.zeros((len(rows), ret.n_items), dtype=bool)
    if exclude is not None:
        banned |= exclude.toarray() != 0
    if item_mask is not None:
        banned[:, ~item_mask] = True
    scores = {g: ret.scores(g, rows) for g in GENERATORS}
    has_item = np.abs(ret.item_vectors).sum(axis=1) > 0
    evidence = {}
    for g in GENERATORS:
        if g == "als":
            evidence[g] = np.ones(scores[g].shape, dtype=bool)
        elif g in ("interest", "content"):
            has_user = np.abs(getattr(ret, g)[rows]).sum(axis=1) > 0
            evidence[g] = has_user[:, None] & has_item[None, :]
        else:
            evidence[g] = scores[g] > 0
    if not use_interest:
        scores["interest"] = np.zeros_like(scores["interest"])
        evidence["interest"][:] = False
    ranks = {g: _reference_ranks(scores[g], ~banned & evidence[g], k) for g in GENERATORS}
    new = ret.item_stats[:, ITEM_STATS.index("age_days")] <= new_item_days
    by_content = ~banned & evidence["content"]
    ranks[COLD] = _reference_ranks(scores["content"], by_content & ret.cold()[None, :], k)
    ranks[NEW] = _reference_ranks(scores["content"], by_content & (new & ~ret.cold())[None, :],
                                  k)
    chosen = np.zeros(banned.shape, dtype=bool)
    for r in ranks.values():
        chosen |= r < k
    local, items = np.nonzero(chosen & ~banned)
    features = _features(ret, rows[local], items, {g: scores[g][local, items] for g in PERSONAL},
                         {name: r[local, items] for name, r in ranks.items()})
    if not use_interest:
        features[:, FEATURES.index("user_has_interest")] = 0
    return local, items, features


def world(seed: int):
    """Skewed random events over 12 days, so popularity and co-occurrence tie often; some items
    without vectors, some never interacted with (cold), some first seen lately (new); an
    interest memory for half the users."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 90
    weights = 1 / np.arange(1, n_items + 1)
    events = []
    for u in range(n_users):
        for _ in range(int(rng.integers(1, 12))):
            item = int(rng.choice(n_items - 10, p=weights[:-10] / weights[:-10].sum()))
            day = int(rng.integers(0, 12)) if item < 60 else int(rng.integers(9, 12))
            events.append((f"u{u:02d}", f"i{item:02d}", START + timedelta(days=day)))
    catalog = [f"i{i:02d}" for i in range(n_items)]
    vectors = {i: rng.normal(size=8).tolist() for i in catalog if rng.random() > 0.15}
    day = START + timedelta(days=11)
    asof = as_of(events, day, vectors, catalog=catalog)
    users = sorted({u for u, _, _ in events})[::2]
    interest = pl.DataFrame({"user_id": users}).with_columns(pl.Series(
        "vector", rng.normal(size=(len(users), 8)).astype(np.float32),
        dtype=pl.Array(pl.Float32, 8)))
    asof = dataclasses.replace(asof, interest=interest)
    cfg = RetrievalSettings(cold_min_users=2, neighbors=6, recent_items=3)
    return fit_retrieval(asof, cfg, lambda d: fit_als(d, ModelSettings(factors=4,
                                                                        iterations=3, seed=1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("use_interest", [True, False])
@pytest.mark.parametrize("k", [1, 4, 30])
def test_candidates_are_the_dense_definition(seed: int, use_interest: bool, k: int) -> None:
    ret = world(seed)
    assert ret.cold().any() and not ret.cold().all()
    rows = np.arange(3, ret.user_ids.len(), 2)
    mask = np.ones(ret.n_items, dtype=bool)
    mask[::7] = False
    for exclude, item_mask in ((None, None), (ret.seen[rows], mask)):
        cand = candidates(ret, rows, k, 2, exclude=exclude, item_mask=item_mask,
                          use_interest=use_interest)
        local, items, features = reference(ret, rows, k, 2, exclude, item_mask, use_interest)
        assert np.array_equal(cand.local, local) and np.array_equal(cand.items, items)
        assert np.array_equal(cand.users, rows[local])
        np.testing.assert_array_equal(cand.features, features)


def test_best_of_rows_orders_by_score_then_item_and_cuts_each_row() -> None:
    local = np.array([1, 0, 0, 1, 0, 0, 1])
    items = np.array([5, 3, 1, 2, 7, 2, 9])
    scores = np.array([0.5, 0.9, 0.9, 0.5, 0.1, 0.4, 0.7], dtype=np.float32)
    top = best_of_rows(local, items, scores, 2)
    assert top.local.tolist() == [0, 0, 1, 1]
    assert top.items.tolist() == [1, 3, 9, 2]  # ties: the lower item first
    assert top.ranks.tolist() == [0, 1, 0, 1]


def test_best_of_rows_ranks_signed_zeros_infinities_and_negatives_as_floats_compare() -> None:
    values = np.float32([0.0, -0.0, np.inf, -np.inf, -1.5, 1e-45, -1e-45, 3e38, -3e38, 2.0])
    rng = np.random.default_rng(0)
    local = np.repeat(np.arange(4), 40)
    items = np.tile(np.arange(40), 4)
    scores = rng.choice(values, size=len(local))
    want = np.lexsort((items, -scores, local))  # the rule, on the floats themselves
    # Rows this far apart leave no room for one packed key: the two-key sort takes over.
    for offset in (0, 2**30):
        top = best_of_rows(local + offset, items, scores, 40)
        assert top.local.tolist() == (local[want] + offset).tolist()
        assert top.items.tolist() == items[want].tolist()
        assert top.ranks.tolist() == np.tile(np.arange(40), 4).tolist()


def test_no_users_no_candidates() -> None:
    ret = world(0)
    cand = candidates(ret, np.zeros(0, dtype=np.int64), 5, 2,
                      exclude=sp.csr_matrix((0, ret.n_items)))
    assert cand.features.shape == (0, len(FEATURES))


def test_a_stored_model_gives_back_its_content_vectors_bit_for_bit() -> None:
    from pipelines.model.recommender import Model
    from pipelines.model.registry import ARRAYS, from_parts, to_parts

    ret = world(0)
    parts = to_parts(Model(retrieval=ret, ranker=None))
    assert "content" not in parts.arrays and "content" not in ARRAYS
    back = from_parts(parts).retrieval
    assert back.content.dtype == np.float32
    assert np.array_equal(back.content, ret.content) and np.abs(ret.content).sum() > 0
