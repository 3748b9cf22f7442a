"""Ranking metrics over frames of recommendations and held-out truth.

``recs``: ``user_id, item_id, rank`` (1 = best); ``truth``: ``user_id, item_id`` (relevant items).
Every metric averages over the users in ``truth``; a user with no recommendations scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.core.errors import MetricInputError

USER, ITEM, RANK = "user_id", "item_id", "rank"


def _check(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> None:
    if k < 1:
        raise MetricInputError(f"k must be at least 1, got {k}")
    for name, frame, cols in (("recs", recs, (USER, ITEM, RANK)), ("truth", truth, (USER, ITEM))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise MetricInputError(f"{name} is missing column(s) {', '.join(missing)}")


@dataclass(frozen=True)
class Hits:
    """The hits of lists against truth, down to rank ``depth``: the truth users (sorted), how
    many items each has, and every hit as (user position, rank), sorted by user, then rank.
    One join serves every metric at every k up to ``depth``."""

    users: pl.Series
    n_relevant: np.ndarray  # int64 per user
    owner: np.ndarray  # int64 per hit: the position of its user
    rank: np.ndarray  # int64 per hit
    depth: int


def hits(recs: pl.DataFrame, truth: pl.DataFrame, depth: int) -> Hits:
    """The ``Hits`` of ``recs`` (their first ``depth`` ranks) against ``truth``."""
    _check(recs, truth, depth)
    truth = truth.select(USER, ITEM).unique()
    # Sorted: group_by's order changes from run to run on large frames, and a mean sums the
    # users in one order (the same last bit every time).
    relevant = truth.group_by(USER).agg(pl.len().alias("n")).sort(USER)
    found = (recs.filter(pl.col(RANK) <= depth).select(USER, ITEM, RANK)
             .join(truth, on=[USER, ITEM], how="inner")
             .join(relevant.select(USER).with_row_index("_u"), on=USER)
             .sort("_u", RANK))
    return Hits(relevant[USER], relevant["n"].to_numpy().astype(np.int64),
                found["_u"].to_numpy().astype(np.int64),
                found[RANK].to_numpy().astype(np.int64), depth)


def values_at(h: Hits, metric: str, k: int) -> np.ndarray:
    """Each truth user's value of ``metric`` at ``k`` (0 for a user without a hit), in
    ``h.users``' order. Per user, discounts and precisions add up in rank order."""
    if not 1 <= k <= h.depth:
        raise MetricInputError(f"k must be between 1 and the hits' depth {h.depth}, got {k}")
    within = h.rank <= k
    owner, rank = h.owner[within], h.rank[within]
    n_users = len(h.n_relevant)
    found = np.bincount(owner, minlength=n_users)
    if metric == "recall":
        return found / h.n_relevant
    if metric == "precision":
        return found / k
    if metric == "hit_rate":
        return (found > 0).astype(np.float64)
    if metric == "ndcg":  # binary relevance: the hits' DCG over a perfect top k's
        discounts = np.array([1.0 / math.log2(r + 1) for r in range(1, k + 1)])
        ideal = np.concatenate([[0.0], np.cumsum(discounts)])  # a perfect top n's, n = 0..k
        return np.bincount(owner, weights=discounts[rank - 1], minlength=n_users) / \
            ideal[np.minimum(h.n_relevant, k)]
    if metric == "map":  # the precision at each hit's rank, over min(n_relevant, k)
        place = np.arange(len(owner)) - np.searchsorted(owner, owner) + 1
        return np.bincount(owner, weights=place / rank, minlength=n_users) / \
            np.minimum(h.n_relevant, k)
    raise MetricInputError(f"unknown metric {metric!r}; metrics are {', '.join(METRIC_NAMES)}")


def per_user_at(h: Hits, metric: str, k: int) -> pl.DataFrame:
    """``user_id, value``: :func:`values_at` as a frame."""
    return pl.DataFrame({USER: h.users, "value": values_at(h, metric, k)},
                        schema={USER: h.users.dtype, "value": pl.Float64})


def mean_at(h: Hits, metric: str, k: int) -> float:
    """The metric: its per-user values' mean over the truth users."""
    return _mean(per_user_at(h, metric, k))


def _mean(values: pl.DataFrame) -> float:
    return float(values["value"].mean()) if values.height else 0.0


def _per_user_metric(metric: str) -> Callable[[pl.DataFrame, pl.DataFrame, int], pl.DataFrame]:
    def per_user(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> pl.DataFrame:
        return per_user_at(hits(recs, truth, k), metric, k)

    per_user.__name__ = f"{metric}_per_user"
    per_user.__doc__ = f"Each truth user's {metric} at k (0 for a user without a list)."
    return per_user


def _metric(metric: str) -> Callable[[pl.DataFrame, pl.DataFrame, int], float]:
    def at_k(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
        return mean_at(hits(recs, truth, k), metric, k)

    at_k.__name__ = f"{metric}_at_k"
    at_k.__doc__ = f"{metric} at k, averaged over the users in truth."
    return at_k


# Per-user values of each metric (its mean is the metric), for paired comparisons.
METRIC_NAMES = ("recall", "precision", "ndcg", "map", "hit_rate")
PER_USER = {name: _per_user_metric(name) for name in METRIC_NAMES}
METRICS = {name: _metric(name) for name in METRIC_NAMES}
recall_per_user, precision_per_user, ndcg_per_user, map_per_user, hit_rate_per_user = (
    PER_USER[name] for name in METRIC_NAMES)
recall_at_k, precision_at_k, ndcg_at_k, map_at_k, hit_rate_at_k = (
    METRICS[name] for name in METRIC_NAMES)


# --- properties of the lists themselves ------------------------------------------------------

def coverage_at_k(recs: pl.DataFrame, k: int, n_items: int) -> float:
    """The share of the ``n_items`` recommendable items that appear in some user's top k."""
    if n_items < 1:
        return 0.0
    return recs.filter(pl.col(RANK) <= k)[ITEM].n_unique() / n_items


def novelty_at_k(recs: pl.DataFrame, k: int, item_users: pl.DataFrame, n_users: int) -> float:
    """Mean self-information ``-log2(p)`` of the recommended items (top k of every list), where
    ``p`` is the share of the ``n_users`` training users who interacted with the item
    (``item_users``: ``item_id, users``); an item nobody had counts as one user's."""
    top = recs.filter(pl.col(RANK) <= k).select(ITEM)
    if top.is_empty() or n_users < 1:
        return 0.0
    p = (top.join(item_users.select(ITEM, "users"), on=ITEM, how="left")
         .select(pl.col("users").fill_null(0).clip(lower_bound=1) / n_users))
    return float(p.select(-(pl.col("users").log(2)).mean()).item())
