"""Temporal holdout evaluation: fit on days up to ``ds - h``, test on the days after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from pipelines import features
from pipelines.als import build_matrix, fit_als
from pipelines.config import Settings
from pipelines.metrics import METRICS
from pipelines.recommend import als_lists, popularity_lists, popularity_ranking
from pipelines.validate import day_bounds


@dataclass(frozen=True)
class Holdout:
    cutoff: datetime          # end of day ``ds - h``: training data is strictly before it
    train: pl.DataFrame       # clean events before the cutoff
    truth: pl.DataFrame       # user_id, item_id: new positive pairs after it, known users/items


def holdout_split(events: pl.DataFrame, ds: date, settings: Settings) -> Holdout:
    _, cutoff = day_bounds(ds - timedelta(days=settings.eval.holdout_days))
    train = events.filter(pl.col("ts") < cutoff)
    test = events.filter(pl.col("ts") >= cutoff)
    # A low rating is not a hit; every other interaction is.
    positive = ~((pl.col("event_type") == "rate")
                 & (pl.col("value") < settings.features.rating_neutral))
    truth = (
        test.filter(positive)
        .select("user_id", "item_id").unique()
        .filter(pl.col("user_id").is_in(train["user_id"].implode()))
        .filter(pl.col("item_id").is_in(train["item_id"].implode()))
        .join(train.select("user_id", "item_id").unique(), on=["user_id", "item_id"], how="anti")
        .sort("user_id", "item_id")
    )
    return Holdout(cutoff=cutoff, train=train, truth=truth)


def candidate_lists(holdout: Holdout, settings: Settings) -> dict[str, pl.DataFrame]:
    """Lists for the truth users from each model trained on the training part only."""
    k = max(settings.eval.k)
    users = holdout.truth["user_id"].unique()
    seen = holdout.train.select("user_id", "item_id").unique()
    inter = features.interactions(holdout.train, holdout.cutoff, settings.features,
                                  settings.validate)
    data = build_matrix(inter)
    factors = fit_als(data, settings.model)
    pop = features.items(holdout.train, holdout.cutoff, settings.features)
    # Long enough that every user still has k unseen items after their history is removed.
    longest_history = seen.group_by("user_id").len().get_column("len").max() or 0
    ranking = popularity_ranking(pop, None, k + int(longest_history))
    return {
        "popularity": popularity_lists(ranking, users, k, seen),
        "als": als_lists(factors, data.user_ids, data.item_ids, users, k, seen),
    }


def score_lists(lists: dict[str, pl.DataFrame], truth: pl.DataFrame,
                ks: tuple[int, ...]) -> pl.DataFrame:
    """``model, metric, k, value`` for every model, metric and cut-off."""
    rows = [
        {"model": model, "metric": name, "k": k, "value": fn(recs, truth, k)}
        for model, recs in lists.items()
        for name, fn in METRICS.items()
        for k in ks
    ]
    return pl.DataFrame(rows, schema={"model": pl.String, "metric": pl.String,
                                      "k": pl.Int32, "value": pl.Float64})
