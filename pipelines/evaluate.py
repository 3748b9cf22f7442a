"""Temporal holdout evaluation: models fitted on the features as of the end of day ``ds - h``,
tested on the interactions of the ``h`` days after it."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.als import Factors, build_matrix, fit_als
from pipelines.config import Settings
from pipelines.metrics import METRICS
from pipelines.recommend import als_lists, popularity_lists, popularity_ranking


def holdout_truth(test_events: pl.DataFrame, train: pl.DataFrame,
                  settings: Settings) -> pl.DataFrame:
    """``user_id, item_id``: new positive pairs of the test days, for users and items the
    training data knows (``train``: the interactions as of the cut-off)."""
    # A low rating is not a hit; every other interaction is.
    positive = ~((pl.col("event_type") == "rate")
                 & (pl.col("value") < settings.features.rating_neutral))
    return (
        test_events.filter(positive)
        .select("user_id", "item_id").unique()
        .filter(pl.col("user_id").is_in(train["user_id"].implode()))
        .filter(pl.col("item_id").is_in(train["item_id"].implode()))
        .join(train.select("user_id", "item_id"), on=["user_id", "item_id"], how="anti")
        .sort("user_id", "item_id")
    )


def _matrix(frame: pl.DataFrame) -> np.ndarray:
    return frame["vector"].to_numpy().reshape(frame.height, -1).astype(np.float32)


def candidate_lists(train: pl.DataFrame, train_items: pl.DataFrame, truth: pl.DataFrame,
                    settings: Settings, interest: pl.DataFrame | None = None,
                    item_vectors: pl.DataFrame | None = None) -> dict[str, pl.DataFrame]:
    """Lists for the truth users from each model fitted on the training data only.

    ``interest`` (``user_id, vector``) and ``item_vectors`` (``item_id, vector``), both as of
    the cut-off, add the embedding model: items by cosine to the user's interest vector.
    """
    k = max(settings.eval.k)
    users = truth["user_id"].unique()
    seen = train.select("user_id", "item_id")
    data = build_matrix(train)
    factors = fit_als(data, settings.model)
    # Long enough that every user still has k unseen items after their history is removed.
    longest_history = seen.group_by("user_id").len().get_column("len").max() or 0
    ranking = popularity_ranking(train_items, None, k + int(longest_history))
    lists = {
        "popularity": popularity_lists(ranking, users, k, seen),
        "als": als_lists(factors, data.user_ids, data.item_ids, users, k, seen),
    }
    if interest is not None and item_vectors is not None:
        items = item_vectors.filter(pl.col("item_id").is_in(data.item_ids.implode()))
        vectors = Factors(user=_matrix(interest), item=_matrix(items))
        lists["embedding"] = als_lists(vectors, interest["user_id"], items["item_id"], users,
                                       k, seen)
    return lists


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
