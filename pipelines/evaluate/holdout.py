"""Temporal holdout evaluation: every model is fitted on what was known at the end of a cut-off
day and tested on the new interactions of the days after it, up to ``ds``.

The candidates (the ranker, and its lists with exploration slots when they are set) and every
baseline (each generator's own list, and plain ALS) list
items for the same test users; each lift of a candidate over a baseline comes with a paired
bootstrap interval over those users.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.core.contracts import METRIC_SCHEMA
from pipelines.core.settings import Settings
from pipelines.evaluate.metrics import (
    METRIC_NAMES,
    PER_USER,
    coverage_at_k,
    hits,
    mean_at,
    novelty_at_k,
)
from pipelines.model.recommender import CANDIDATES, Model, ranked_lists
from pipelines.model.retrieval import BASELINES
from pipelines.serve.lists import lists_frame
from pipelines.serve.shards import hash_sample

LIFT_SCHEMA = {"candidate": pl.String, "baseline": pl.String, "metric": pl.String,
               "k": pl.Int32, "candidate_value": pl.Float64, "baseline_value": pl.Float64,
               "lift": pl.Float64, "lift_lo": pl.Float64, "lift_hi": pl.Float64,
               "users": pl.Int64}


def holdout_truth(test_events: pl.DataFrame, train: pl.DataFrame, items: pl.Series,
                  settings: Settings) -> pl.DataFrame:
    """``user_id, item_id``: new positive pairs of the test days, for users the training data
    knows and items that could be recommended at the cut-off (``items``, cold ones included)."""
    # A low rating is not a hit; every other interaction is.
    positive = ~((pl.col("event_type") == "rate")
                 & (pl.col("value") < settings.features.rating_neutral))
    return (
        test_events.filter(positive)
        .select("user_id", "item_id").unique()
        .filter(pl.col("user_id").is_in(train["user_id"].implode()))
        .filter(pl.col("item_id").is_in(items.implode()))
        .join(train.select("user_id", "item_id"), on=["user_id", "item_id"], how="anti")
        .sort("user_id", "item_id")
    )


def sample_test_users(truth: pl.DataFrame, n: int) -> pl.DataFrame:
    """The pairs of at most ``n`` of the truth's users: a fixed hash sample
    (``pipelines.serve.shards.hash_sample``), every pair of each user kept."""
    return truth.filter(pl.col("user_id").is_in(hash_sample(truth["user_id"], n).implode()))


def evaluation_lists(model: Model, truth: pl.DataFrame, settings: Settings,
                     n: int | None = None, names: tuple[str, ...] | None = None,
                     ) -> dict[str, pl.DataFrame]:
    """Top-``n`` lists (default the largest ``eval.k``) for the truth users from the
    candidates (when the ranker could be trained) and every baseline (or only ``names``),
    seen items excluded."""
    ret = model.retrieval
    k = n or max(settings.eval.k)
    users = (pl.DataFrame({"user_id": ret.user_ids}).with_row_index("_u")
             .join(truth.select("user_id").unique(), on="user_id").sort("_u"))
    rows = users["_u"].to_numpy().astype(np.int64)
    names = names or model.candidates(settings.retrieval) + BASELINES
    lists = ranked_lists(model, names, rows, k, settings.retrieval, exclude=ret.seen[rows],
                         memory_mb=settings.serve.memory_mb)
    return {name: lists_frame(users["user_id"], ret.item_ids, *lists[name]) for name in names}


def score_lists(lists: dict[str, pl.DataFrame], truth: pl.DataFrame, ks: tuple[int, ...],
                item_users: pl.DataFrame | None = None, n_users: int = 0,
                cold_items: pl.Series | None = None, n_items: int = 0) -> pl.DataFrame:
    """``model, metric, k, value``: the ranking metrics; with ``item_users`` (``item_id,
    users`` of the training data) catalog coverage (of ``n_items``), novelty and recall on
    pairs of ``cold_items`` against the others."""
    depth = max(ks)
    rows = []
    for model, recs in lists.items():
        found = hits(recs, truth, depth)  # one join for every metric and k
        rows += [{"model": model, "metric": name, "k": k, "value": mean_at(found, name, k)}
                 for name in METRIC_NAMES for k in ks]
    if item_users is not None:
        is_cold = pl.col("item_id").is_in(cold_items.implode()) \
            if cold_items is not None else pl.lit(False)
        cold_truth, warm_truth = truth.filter(is_cold), truth.filter(~is_cold)
        for model, recs in lists.items():
            if cold_truth.height:  # where each model's hits come from
                cold_hits, warm_hits = hits(recs, cold_truth, depth), hits(recs, warm_truth, depth)
            for k in ks:
                rows.append({"model": model, "metric": "coverage", "k": k,
                             "value": coverage_at_k(recs, k, n_items)})
                rows.append({"model": model, "metric": "novelty", "k": k,
                             "value": novelty_at_k(recs, k, item_users, n_users)})
                if cold_truth.height:
                    rows.append({"model": model, "metric": "cold_recall", "k": k,
                                 "value": mean_at(cold_hits, "recall", k)})
                    rows.append({"model": model, "metric": "warm_recall", "k": k,
                                 "value": mean_at(warm_hits, "recall", k)})
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def resampled_users(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """resamples x n: the users (positions) each bootstrap resample draws."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_lift(candidate: np.ndarray, baseline: np.ndarray, resamples: int,
                   seed: int = 0, picks: np.ndarray | None = None,
                   ) -> tuple[float, float, float]:
    """The lift mean(candidate) / mean(baseline) over paired per-user values, with the 2.5 and
    97.5 percentiles of the lift over ``resamples`` resamples of the users (NaN where the
    baseline's mean is 0); ``picks``: ``resampled_users(len(candidate), resamples, seed)``
    when the caller has them already."""
    if len(candidate) != len(baseline):
        raise ValueError("per-user values must be paired")
    base = baseline.mean() if len(baseline) else 0.0
    lift = float(candidate.mean() / base) if base > 0 else float("nan")
    if resamples == 0 or not len(candidate):
        return lift, float("nan"), float("nan")
    if picks is None:
        picks = resampled_users(len(candidate), resamples, seed)
    elif picks.shape != (resamples, len(candidate)):
        raise ValueError(f"picks are {picks.shape}, not {(resamples, len(candidate))}")
    num, den = candidate[picks].mean(axis=1), baseline[picks].mean(axis=1)
    ratios = np.divide(num, den, out=np.full(resamples, np.nan), where=den > 0)
    lo, hi = np.nanpercentile(ratios, [2.5, 97.5]) if np.isfinite(ratios).any() else \
        (np.nan, np.nan)
    return lift, float(lo), float(hi)


def lifts(lists: dict[str, pl.DataFrame], truth: pl.DataFrame, metric: str, k: int,
          resamples: int, seed: int = 0) -> pl.DataFrame:
    """Each candidate's lift over every other list on ``metric@k``, with its paired
    interval."""
    per_user = {m: PER_USER[metric](recs, truth, k) for m, recs in lists.items()}
    rows = []
    # Every list has a value for each test user (sorted alike): one draw serves every pair.
    users = next(iter(per_user.values())).height if per_user else 0
    picks = resampled_users(users, resamples, seed) if resamples and users else None
    for candidate in (c for c in CANDIDATES if c in lists):
        cand = per_user[candidate]["value"].to_numpy()
        for name, frame in per_user.items():
            if name == candidate:
                continue
            base = frame["value"].to_numpy()
            lift, lo, hi = bootstrap_lift(cand, base, resamples, seed, picks)
            rows.append({"candidate": candidate, "baseline": name, "metric": metric, "k": k,
                         "candidate_value": float(cand.mean()) if len(cand) else 0.0,
                         "baseline_value": float(base.mean()) if len(base) else 0.0,
                         "lift": lift, "lift_lo": lo, "lift_hi": hi, "users": len(cand)})
    return pl.DataFrame(rows, schema=LIFT_SCHEMA)
