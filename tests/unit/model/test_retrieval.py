"""The candidate generators on hand-made worlds with known answers: cosine neighbours, what
follows what, the latest items, popularity windows, category shares and cold items."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from pipelines.core.settings import ModelSettings, RetrievalSettings
from pipelines.model.als import fit_als
from pipelines.model.retrieval import (
    GENERATORS,
    cooccurrence_neighbors,
    fit_retrieval,
    top_neighbors,
)
from tests.support.worlds import as_of

D = date(2026, 3, 10)
ALS = ModelSettings(factors=4, iterations=5, regularization=0.1, seed=1)
CFG = RetrievalSettings(cold_min_users=2, recent_items=2, recent_decay=0.5, sequence_window=1,
                        neighbors=10)


def trainer(data):
    return fit_als(data, ALS)


def _day(n: int) -> date:
    return date(2026, 3, n)


# u1: a, b, c in that order; u2: a, b; u3: c, d. d is seen by one user only (cold at 2).
EVENTS = [("u1", "a", _day(1)), ("u1", "b", _day(2)), ("u1", "c", _day(3)),
          ("u2", "a", _day(4)), ("u2", "b", _day(5)),
          ("u3", "c", _day(9)), ("u3", "d", _day(10))]


@pytest.fixture(scope="module")
def ret():
    vectors = {"a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.0, 1.0], "d": [0.6, 0.8],
               "e": [1.0, 0.0]}  # e is in the catalog, nobody has touched it
    cats = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "x"}
    return fit_retrieval(as_of(EVENTS, D, vectors, cats, catalog=list("abcde")), CFG, trainer)


def test_rows_are_sorted_ids_and_cold_items_are_the_few_user_ones(ret) -> None:
    assert ret.user_ids.to_list() == ["u1", "u2", "u3"]
    assert ret.item_ids.to_list() == ["a", "b", "c", "d", "e"]
    assert ret.cold().tolist() == [False, False, False, True, True]
    assert ret.seen.toarray().tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0]]
    # e has no ALS factors of its own: its factors come from its embedding.
    assert ret.als_warm.tolist() == [True, True, True, True, False]
    assert np.abs(ret.item_factors[4]).sum() > 0 and np.abs(ret.als_factors[4]).sum() == 0


def test_neighbours_are_the_cosine_of_co_occurrence(ret) -> None:
    s = ret.neighbors.toarray()
    # a and b: both seen by u1 and u2 (confidence 1 each): cosine 1; a and c share u1 only.
    assert s[0, 1] == pytest.approx(1.0)
    assert s[0, 2] == pytest.approx(1 / (np.sqrt(2) * np.sqrt(2)))
    assert s[2, 3] == pytest.approx(1 / np.sqrt(2))
    assert np.diag(s).tolist() == [0, 0, 0, 0, 0]  # no item is its own neighbour
    assert s[4].sum() == 0  # nobody touched e


def test_follows_counts_the_next_item_in_each_history(ret) -> None:
    f = ret.follows.toarray()
    # a is followed by b twice (u1, u2); b by c once (u1, and nothing after b for u2); c by d.
    assert f[0].tolist() == [0, 1, 0, 0, 0]
    assert f[1].tolist() == [0, 0, 1, 0, 0]
    assert f[2].tolist() == [0, 0, 0, 1, 0]
    assert f[3].sum() == 0


def test_recent_items_weigh_the_latest_most(ret) -> None:
    r = ret.recent.toarray()
    assert r[0].tolist() == [0, 0.5, 1, 0, 0]  # u1: c last, b before it, a too old
    assert r[2].tolist() == [0, 0, 0.5, 1, 0]


def test_generator_scores_have_the_known_values(ret) -> None:
    rows = np.array([1])  # u2: a, b
    seq = ret.scores("sequence", rows)[0]
    assert seq.tolist() == pytest.approx([0, 0.5, 1, 0, 0])  # b last (1): c; a (0.5): b
    knn = ret.scores("itemknn", rows)[0]
    assert knn[2] == pytest.approx(2 * 0.5)  # c co-occurs with a and with b at cosine 0.5
    assert ret.scores("pop_30d", rows)[0].tolist() == [2, 2, 2, 1, 0]
    for name in GENERATORS:
        assert ret.scores(name, rows).shape == (1, 5)


def test_category_affinity_is_the_users_share(ret) -> None:
    users = np.array([0, 0, 2, 2])
    items = np.array([0, 2, 0, 3])
    # u1: two of three in x, one in y; u3: all in y.
    assert ret.category_affinity(users, items).tolist() == pytest.approx([2 / 3, 1 / 3, 0, 1])


def test_content_is_the_mean_of_the_last_items(ret) -> None:
    expected = 1.0 * np.array([0.0, 1.0]) + 0.5 * np.array([0.8, 0.6])  # u1: c, then b
    np.testing.assert_allclose(ret.content[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_top_neighbors_keeps_the_largest_with_ties_by_column() -> None:
    import scipy.sparse as sp

    m = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, 0.1], [0, 0, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(top_neighbors(m, 2).toarray(), [[0.5, 0.9, 0, 0], [0, 0, 0, 0]])


def test_neighbours_do_not_depend_on_the_block_size() -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    x = sp.random(40, 30, density=0.2, format="csr", random_state=rng, dtype=np.float64)
    whole = cooccurrence_neighbors(x, 5, block=30).toarray()
    np.testing.assert_allclose(cooccurrence_neighbors(x, 5, block=7).toarray(), whole,
                               atol=1e-6)


def test_neighbours_are_the_best_cosines_of_other_items_with_ties_by_column() -> None:
    """Against dense cosines: no item is its own neighbour, whether a row has more entries
    than ``k`` or fewer."""
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    x = sp.random(50, 25, density=0.15, format="csr", random_state=rng, dtype=np.float64)
    x.data = np.ceil(x.data * 3)  # few distinct values: many equal cosines
    dense = x.toarray()
    norms = np.linalg.norm(dense, axis=0)
    norms[norms == 0] = 1.0
    cosines = (dense.T @ dense) / np.outer(norms, norms)
    np.fill_diagonal(cosines, 0)
    for k in (3, 100):
        got = cooccurrence_neighbors(x, k, block=8).toarray()
        assert (np.diag(got) == 0).all()
        for i in range(cosines.shape[0]):
            others = np.flatnonzero(cosines[i] > 0)
            keep = others[np.lexsort((others, -cosines[i, others]))][:k]
            assert np.flatnonzero(got[i]).tolist() == sorted(keep.tolist())
            np.testing.assert_allclose(got[i, keep], cosines[i, keep], rtol=1e-6)
