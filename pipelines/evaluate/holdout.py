"""Temporal holdout evaluation: every model is fitted on what was known at the end of day
``ds - h`` and tested on the new interactions of the ``h`` days after it."""

from __future__ import annotations

import polars as pl

from pipelines.core.contracts import METRIC_SCHEMA
from pipelines.core.settings import Settings
from pipelines.embed.encoder import vector_matrix
from pipelines.evaluate.metrics import METRICS, coverage_at_k, novelty_at_k, recall_at_k
from pipelines.model.als import Factors
from pipelines.model.hybrid import AsOf, Hybrid, Trainer, fit_hybrid
from pipelines.serve.lists import popularity_lists, popularity_ranking, top_n_lists


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


def evaluation_lists(train: AsOf, validation: tuple[AsOf, pl.DataFrame] | None,
                     truth: pl.DataFrame, settings: Settings,
                     trainer: Trainer) -> tuple[dict[str, pl.DataFrame], Hybrid]:
    """Top-k lists for the truth users from every model, all fitted on ``train`` only:
    popularity, ALS, ALS with the content map's factors for cold items, embedding similarity
    (when there is an interest memory) and the hybrid."""
    k = max(settings.eval.k)
    users = truth["user_id"].unique()
    seen = train.interactions.select("user_id", "item_id")
    hybrid = fit_hybrid(train, validation, settings.hybrid, trainer)
    base = hybrid.base
    # Long enough that every user still has k unseen items after their history is removed.
    longest_history = seen.group_by("user_id").len().get_column("len").max() or 0
    ranking = popularity_ranking(train.items, None, k + int(longest_history))
    lists = {
        "popularity": popularity_lists(ranking, users, k, seen),
        "als": top_n_lists(base.als, base.user_ids, base.als_item_ids, users, k, seen),
        "als_content": top_n_lists(Factors(user=base.user_factors, item=base.item_factors),
                                 base.user_ids, base.item_ids, users, k, seen),
    }
    if train.interest is not None and train.item_vectors.height:
        interest = train.interest.select("user_id", "vector").sort("user_id")
        vectors = Factors(user=vector_matrix(interest), item=base.item_vectors)
        embedded = train.item_vectors["item_id"]
        lists["embedding"] = top_n_lists(vectors, interest["user_id"], base.item_ids, users, k,
                                       seen, available=embedded)
    lists["hybrid"] = top_n_lists(hybrid.augmented(), base.user_ids, base.item_ids, users, k,
                                seen)
    return lists, hybrid


def score_lists(lists: dict[str, pl.DataFrame], truth: pl.DataFrame, ks: tuple[int, ...],
                train: AsOf | None = None, cold_items: pl.Series | None = None,
                n_items: int = 0) -> pl.DataFrame:
    """``model, metric, k, value``: the ranking metrics, and with ``train`` catalog coverage
    (of ``n_items``), novelty and recall on pairs of ``cold_items``."""
    rows = [
        {"model": model, "metric": name, "k": k, "value": fn(recs, truth, k)}
        for model, recs in lists.items()
        for name, fn in METRICS.items()
        for k in ks
    ]
    if train is not None:
        item_users = train.items.select("item_id", pl.col("n_users").alias("users"))
        n_users = train.interactions["user_id"].n_unique()
        is_cold = pl.col("item_id").is_in(cold_items.implode()) \
            if cold_items is not None else pl.lit(False)
        cold_truth, warm_truth = truth.filter(is_cold), truth.filter(~is_cold)
        for model, recs in lists.items():
            for k in ks:
                rows.append({"model": model, "metric": "coverage", "k": k,
                             "value": coverage_at_k(recs, k, n_items)})
                rows.append({"model": model, "metric": "novelty", "k": k,
                             "value": novelty_at_k(recs, k, item_users, n_users)})
                if cold_truth.height:  # where each model's hits come from
                    rows.append({"model": model, "metric": "cold_recall", "k": k,
                                 "value": recall_at_k(recs, cold_truth, k)})
                    rows.append({"model": model, "metric": "warm_recall", "k": k,
                                 "value": recall_at_k(recs, warm_truth, k)})
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)
