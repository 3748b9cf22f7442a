"""Ranking metrics on hand-computed fixtures, their limits and their input checks."""

from __future__ import annotations

import math

import polars as pl
import pytest

from pipelines.evaluate.metrics import (
    METRICS,
    PER_USER,
    MetricInputError,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

D2 = 1.0 / math.log2(3)  # discount of rank 2
D3 = 1.0 / math.log2(4)  # discount of rank 3 (= 0.5)


def _recs(lists: dict[str, list[str]]) -> pl.DataFrame:
    """Long ``user_id, item_id, rank`` frame; each list is best first."""
    rows = [(u, item, r) for u, items in lists.items() for r, item in enumerate(items, start=1)]
    return pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String,
                                      "rank": pl.Int32}, orient="row")


def _truth(relevant: dict[str, list[str]]) -> pl.DataFrame:
    rows = [(u, item) for u, items in relevant.items() for item in items]
    return pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String}, orient="row")


# u1 has two relevant items (a at rank 1, b at rank 3), u2 one (c at rank 2), u3 one but no
# recommendations at all, so u3 scores 0 everywhere and still counts in every mean.
RECS = _recs({"u1": ["a", "x", "b"], "u2": ["y", "c", "z"]})
TRUTH = _truth({"u1": ["a", "b"], "u2": ["c"], "u3": ["d"]})


def test_recall_at_k_hand_computed() -> None:
    # k=2: u1 1/2, u2 1/1, u3 0 -> (0.5 + 1 + 0) / 3 = 0.5
    assert recall_at_k(RECS, TRUTH, k=2) == pytest.approx(0.5)
    # k=3: u1 2/2, u2 1/1, u3 0 -> 2/3
    assert recall_at_k(RECS, TRUTH, k=3) == pytest.approx(2 / 3)
    # k=1: u1 1/2, u2 0, u3 0 -> 1/6
    assert recall_at_k(RECS, TRUTH, k=1) == pytest.approx(1 / 6)


def test_precision_at_k_hand_computed() -> None:
    # k=2: u1 1/2, u2 1/2, u3 0 -> 1/3
    assert precision_at_k(RECS, TRUTH, k=2) == pytest.approx(1 / 3)
    # k=3: u1 2/3, u2 1/3, u3 0 -> (2/3 + 1/3) / 3 = 1/3
    assert precision_at_k(RECS, TRUTH, k=3) == pytest.approx(1 / 3)
    # k=1: u1 1/1, u2 0, u3 0 -> 1/3
    assert precision_at_k(RECS, TRUTH, k=1) == pytest.approx(1 / 3)


def test_hit_rate_at_k_hand_computed() -> None:
    # k=1: only u1 has a hit -> 1/3; k=2: u1 and u2 -> 2/3
    assert hit_rate_at_k(RECS, TRUTH, k=1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(RECS, TRUTH, k=2) == pytest.approx(2 / 3)


def test_ndcg_at_k_hand_computed() -> None:
    # k=2: u1 DCG = 1 (rank 1), ideal = 1 + 1/log2(3); u2 DCG = 1/log2(3), ideal = 1; u3 0
    expected_k2 = (1.0 / (1.0 + D2) + D2 + 0.0) / 3
    assert ndcg_at_k(RECS, TRUTH, k=2) == pytest.approx(expected_k2)
    assert expected_k2 == pytest.approx((0.613147 + 0.630930) / 3, abs=1e-6)  # 0.414692
    # k=3: u1 DCG = 1 + 1/log2(4) = 1.5, ideal = 1 + 1/log2(3); u2 as before; u3 0
    expected_k3 = (1.5 / (1.0 + D2) + D2 + 0.0) / 3
    assert ndcg_at_k(RECS, TRUTH, k=3) == pytest.approx(expected_k3)
    assert expected_k3 == pytest.approx((0.919721 + 0.630930) / 3, abs=1e-6)  # 0.516884


def test_perfect_ranking_scores_one() -> None:
    # Every user's relevant items fill the top k; extra recommendations below k do not matter.
    recs = _recs({"u1": ["a", "b", "x"], "u2": ["c", "d", "y"]})
    truth = _truth({"u1": ["a", "b"], "u2": ["c", "d"]})
    for metric in METRICS.values():
        assert metric(recs, truth, k=2) == pytest.approx(1.0)


def test_ideal_dcg_is_capped_at_k() -> None:
    # Three relevant items but k=2: a perfect top 2 is an NDCG of 1, recall 2/3.
    recs = _recs({"u1": ["a", "b", "c"]})
    truth = _truth({"u1": ["a", "b", "c"]})
    assert ndcg_at_k(recs, truth, k=2) == pytest.approx(1.0)
    assert recall_at_k(recs, truth, k=2) == pytest.approx(2 / 3)
    assert precision_at_k(recs, truth, k=2) == pytest.approx(1.0)


def test_no_hits_score_zero() -> None:
    recs = _recs({"u1": ["x", "y"], "u2": ["z"]})
    truth = _truth({"u1": ["a"], "u2": ["b"]})
    for metric in METRICS.values():
        assert metric(recs, truth, k=2) == 0.0


def test_users_without_recommendations_count_as_zero() -> None:
    truth = _truth({"u1": ["a"], "u2": ["b"]})
    only_u1 = _recs({"u1": ["a"]})
    # u1 is perfect, u2 has no list at all: (1 + 0) / 2 for every metric at k=1.
    for metric in METRICS.values():
        assert metric(only_u1, truth, k=1) == pytest.approx(0.5)
    empty = _recs({})
    for metric in METRICS.values():
        assert metric(empty, truth, k=3) == 0.0


def test_users_outside_truth_are_ignored() -> None:
    extra = pl.concat([RECS, _recs({"u9": ["a", "b", "c"]})])
    for metric in METRICS.values():
        assert metric(extra, TRUTH, k=2) == pytest.approx(metric(RECS, TRUTH, k=2))


def test_duplicate_truth_rows_count_once() -> None:
    doubled = pl.concat([TRUTH, TRUTH])
    for metric in METRICS.values():
        assert metric(RECS, doubled, k=3) == pytest.approx(metric(RECS, TRUTH, k=3))


def test_empty_truth_gives_zero() -> None:
    for metric in METRICS.values():
        assert metric(RECS, TRUTH.clear(), k=2) == 0.0


@pytest.mark.parametrize("name", sorted(METRICS))
def test_missing_rank_column_raises(name: str) -> None:
    with pytest.raises(MetricInputError, match="recs is missing column.*rank"):
        METRICS[name](RECS.drop("rank"), TRUTH, k=2)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_missing_truth_column_raises(name: str) -> None:
    with pytest.raises(MetricInputError, match="truth is missing column.*item_id"):
        METRICS[name](RECS, TRUTH.drop("item_id"), k=2)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_raises(name: str, k: int) -> None:
    with pytest.raises(MetricInputError, match="k must be at least 1"):
        METRICS[name](RECS, TRUTH, k=k)


def test_metric_errors_are_value_errors() -> None:
    assert issubclass(MetricInputError, ValueError)


def test_map_on_the_fixture() -> None:
    from pipelines.evaluate.metrics import map_at_k

    # u1: hits at 1 and 3 -> (1/1 + 2/3) / 2; u2: hit at 2 -> (1/2) / 1; u3: 0.
    assert map_at_k(RECS, TRUTH, 3) == pytest.approx(((1 + 2 / 3) / 2 + 0.5 + 0) / 3)
    # At k=2 u1 keeps one hit of min(2, 2) relevant: 1/2.
    assert map_at_k(RECS, TRUTH, 2) == pytest.approx((0.5 + 0.5 + 0) / 3)
    perfect = _recs({"u1": ["a", "b"], "u2": ["c"], "u3": ["d"]})
    assert map_at_k(perfect, TRUTH, 10) == pytest.approx(1.0)


def test_coverage_counts_distinct_items_in_the_top_k() -> None:
    from pipelines.evaluate.metrics import coverage_at_k

    assert coverage_at_k(RECS, 1, 10) == pytest.approx(2 / 10)      # a, y
    assert coverage_at_k(RECS, 3, 10) == pytest.approx(6 / 10)      # a x b y c z
    assert coverage_at_k(RECS, 3, 0) == 0.0


def test_novelty_is_mean_self_information() -> None:
    from pipelines.evaluate.metrics import novelty_at_k

    item_users = pl.DataFrame({"item_id": ["a", "y"], "users": [4, 1]})
    # top 1: a (4 of 8 users: 1 bit), y (1 of 8: 3 bits) -> 2 bits.
    assert novelty_at_k(RECS, 1, item_users, 8) == pytest.approx(2.0)
    # top 2 adds x and c, unknown: counted as one user each (3 bits).
    assert novelty_at_k(RECS, 2, item_users, 8) == pytest.approx((1 + 3 + 3 + 3) / 4)
    assert novelty_at_k(RECS.head(0), 2, item_users, 8) == 0.0


@pytest.mark.parametrize("name", sorted(PER_USER))
def test_per_user_values_come_sorted_by_user(name) -> None:
    # Many users in reverse order, in frames large enough for polars to group in parallel:
    # lifts pair lists by position, and a mean's last bit depends on the order it sums in.
    users = [f"u{n:05d}" for n in range(20_000)][::-1]
    recs = _recs({u: ["a", "b"] for u in users})
    truth = _truth({u: ["b" if n % 3 else "a"] for n, u in enumerate(users)})
    got = PER_USER[name](recs, truth, 2)["user_id"].to_list()
    assert got == sorted(users)


def test_one_join_serves_every_metric_at_every_shallower_k() -> None:
    from pipelines.evaluate.metrics import hits, mean_at, per_user_at

    found = hits(RECS, TRUTH, 3)
    for name in METRICS:
        for k in (1, 2, 3):
            assert mean_at(found, name, k) == METRICS[name](RECS, TRUTH, k)
            assert per_user_at(found, name, k).equals(PER_USER[name](RECS, TRUTH, k))
    # Known answers from the one join: u1's hits at ranks 1 and 3, u2's at 2.
    assert per_user_at(found, "ndcg", 3)["value"].to_list() == \
        pytest.approx([(1 + D3) / (1 + D2), D2 / 1.0, 0.0])
    assert per_user_at(found, "map", 2)["value"].to_list() == pytest.approx([1 / 2, 1 / 2 / 1, 0])
    with pytest.raises(MetricInputError, match="depth 3"):
        mean_at(found, "ndcg", 4)


def test_per_user_values_do_not_depend_on_the_rows_order() -> None:
    # The discounts of a user's hits add up in rank order, whatever order the lists come in.
    rows = [(f"u{u}", f"i{(u * 7 + r) % 40}", r) for u in range(300) for r in range(1, 21)]
    recs = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String,
                                      "rank": pl.Int32}, orient="row")
    truth = _truth({f"u{u}": [f"i{(u + j) % 40}" for j in range(0, 40, 3)] for u in range(300)})
    shuffled = recs.sample(fraction=1.0, shuffle=True, seed=5)
    for name in METRICS:
        assert PER_USER[name](shuffled, truth, 20).equals(PER_USER[name](recs, truth, 20))
