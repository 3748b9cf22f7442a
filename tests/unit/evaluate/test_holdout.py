"""The ranker's lift over a baseline with its paired bootstrap interval over users."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.evaluate.holdout import (
    bootstrap_lift,
    lifts,
    resampled_users,
    sample_test_users,
)


def test_identical_models_have_lift_one_and_no_spread() -> None:
    values = np.array([0.0, 0.5, 1.0, 0.25])
    assert bootstrap_lift(values, values, 200) == (1.0, 1.0, 1.0)


def test_twice_as_good_on_every_user_is_a_lift_of_two() -> None:
    base = np.array([0.1, 0.2, 0.3, 0.4])
    lift, lo, hi = bootstrap_lift(2 * base, base, 500)
    assert lift == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)


def test_the_interval_holds_the_lift_and_narrows_with_more_users() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 2000):
        base = rng.random(n)
        cand = base + rng.normal(0.1, 0.3, n)
        lift, lo, hi = bootstrap_lift(cand, base, 1000, seed=1)
        assert lo <= lift <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3
    assert np.isnan(bootstrap_lift(np.ones(3), np.zeros(3), 10)[0])  # no baseline hit


def test_the_same_seed_gives_the_same_interval() -> None:
    rng = np.random.default_rng(3)
    base, cand = rng.random(30), rng.random(30)
    assert bootstrap_lift(cand, base, 100, seed=5) == bootstrap_lift(cand, base, 100, seed=5)
    with pytest.raises(ValueError, match="paired"):
        bootstrap_lift(cand, base[:10], 100)


def test_lifts_compare_each_candidate_with_every_other_list_on_the_same_users() -> None:
    truth = pl.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"]})

    def lists(rows):
        return pl.DataFrame(rows, schema={"user_id": pl.String, "rank": pl.Int32,
                                          "item_id": pl.String}, orient="row")

    table = lifts({"ranker": lists([("a", 1, "x"), ("b", 1, "y")]),
                   "pop_7d": lists([("a", 1, "x"), ("b", 1, "z")]),
                   "als_plain": lists([("a", 1, "q")])}, truth, "hit_rate", 10, resamples=50)
    rows = {r["baseline"]: r for r in table.iter_rows(named=True)}
    assert rows["pop_7d"]["lift"] == pytest.approx(2.0) and rows["pop_7d"]["users"] == 2
    assert np.isnan(rows["als_plain"]["lift"])  # the baseline hit nobody
    assert lifts({"pop_7d": lists([])}, truth, "ndcg", 10, 10).is_empty()  # no ranker
    both = lifts({"ranker": lists([("a", 1, "x")]), "ranker_explore": lists([("b", 1, "y")]),
                  "pop_7d": lists([("a", 1, "x"), ("b", 1, "z")])}, truth, "hit_rate", 10, 0)
    assert sorted(both.select("candidate", "baseline").rows()) == [
        ("ranker", "pop_7d"), ("ranker", "ranker_explore"),
        ("ranker_explore", "pop_7d"), ("ranker_explore", "ranker")]


def test_a_test_user_sample_keeps_every_pair_of_the_users_it_keeps() -> None:
    truth = pl.DataFrame({"user_id": [f"u{n % 30}" for n in range(90)],
                          "item_id": [f"i{n}" for n in range(90)]})
    sample = sample_test_users(truth, 10)
    assert sample["user_id"].n_unique() == 10
    assert sample.group_by("user_id").len()["len"].to_list() == [3] * 10
    again = sample_test_users(truth.reverse(), 10)  # the same users in any row order
    assert set(again["user_id"]) == set(sample["user_id"]) and again.height == 30
    assert sample_test_users(truth, 30).equals(truth)


def test_drawn_users_given_once_give_the_interval_each_call_would_draw() -> None:
    rng = np.random.default_rng(4)
    base, cand = rng.random(40), rng.random(40)
    picks = resampled_users(40, 200, seed=7)
    assert bootstrap_lift(cand, base, 200, 7, picks) == bootstrap_lift(cand, base, 200, 7)
    with pytest.raises(ValueError, match="picks"):
        bootstrap_lift(cand, base, 100, 7, picks)
