"""Ranking metrics over frames of recommendations and held-out truth.

``recs``: ``user_id, item_id, rank`` (1 = best); ``truth``: ``user_id, item_id`` (relevant items).
Every metric averages over the users in ``truth``; a user with no recommendations scores 0.
"""

from __future__ import annotations

import math

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


def _per_user(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> pl.DataFrame:
    """Per truth user, sorted by user: number relevant, hits in the top k, and the ranks of
    those hits."""
    truth = truth.select(USER, ITEM).unique()
    top = recs.filter(pl.col(RANK) <= k).select(USER, ITEM, RANK)
    hits = top.join(truth, on=[USER, ITEM], how="inner")
    return (
        truth.group_by(USER).agg(pl.len().alias("n_relevant"))
        .join(hits.group_by(USER).agg(pl.col(RANK).alias("hit_ranks")), on=USER, how="left")
        .with_columns(pl.col("hit_ranks").fill_null(pl.lit([], pl.List(pl.Int64))))
        # group_by's order changes from run to run on large frames: sorted, a mean sums the
        # users in one order (the same last bit every time), and lists pair up by position.
        .sort(USER)
    )


def _mean(values: pl.DataFrame) -> float:
    return float(values["value"].mean()) if values.height else 0.0


def recall_at_k(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
    return _mean(recall_per_user(recs, truth, k))


def precision_at_k(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
    return _mean(precision_per_user(recs, truth, k))


def hit_rate_at_k(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
    return _mean(hit_rate_per_user(recs, truth, k))


def ndcg_at_k(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
    """Binary-relevance NDCG: DCG of the hits over the DCG of a perfect top k."""
    return _mean(ndcg_per_user(recs, truth, k))


def map_at_k(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
    """Mean average precision: per user, the precision at each hit's rank, summed over hits and
    divided by ``min(n_relevant, k)``."""
    return _mean(map_per_user(recs, truth, k))


def _per_user_values(recs: pl.DataFrame, truth: pl.DataFrame, k: int,
                     value: pl.Expr) -> pl.DataFrame:
    _check(recs, truth, k)
    return _per_user(recs, truth, k).select(USER, value.cast(pl.Float64).alias("value"))


def recall_per_user(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> pl.DataFrame:
    return _per_user_values(recs, truth, k, pl.col("hit_ranks").list.len() / pl.col("n_relevant"))


def precision_per_user(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> pl.DataFrame:
    return _per_user_values(recs, truth, k, pl.col("hit_ranks").list.len() / k)


def hit_rate_per_user(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> pl.DataFrame:
    return _per_user_values(recs, truth, k, pl.col("hit_ranks").list.len() > 0)


def ndcg_per_user(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> pl.DataFrame:
    """Each truth user's binary-relevance NDCG (0 for a user without a list)."""
    _check(recs, truth, k)
    pu = _per_user(recs, truth, k)
    discounts = [1.0 / math.log2(r + 1) for r in range(1, k + 1)]
    ideal_prefix = [sum(discounts[:n]) for n in range(k + 1)]
    values = [sum(discounts[r - 1] for r in ranks) / ideal_prefix[min(n_rel, k)]
              for n_rel, ranks in pu.select("n_relevant", "hit_ranks").iter_rows()]
    return pl.DataFrame({USER: pu[USER], "value": values},
                        schema={USER: pu.schema[USER], "value": pl.Float64})


def map_per_user(recs: pl.DataFrame, truth: pl.DataFrame, k: int) -> pl.DataFrame:
    _check(recs, truth, k)
    pu = _per_user(recs, truth, k)
    values = [sum((i + 1) / r for i, r in enumerate(sorted(ranks))) / min(n_rel, k)
              for n_rel, ranks in pu.select("n_relevant", "hit_ranks").iter_rows()]
    return pl.DataFrame({USER: pu[USER], "value": values},
                        schema={USER: pu.schema[USER], "value": pl.Float64})


# Per-user values of each metric (its mean is the metric), for paired comparisons.
PER_USER = {
    "recall": recall_per_user,
    "precision": precision_per_user,
    "ndcg": ndcg_per_user,
    "map": map_per_user,
    "hit_rate": hit_rate_per_user,
}

METRICS = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
}


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
