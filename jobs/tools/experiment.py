"""Offline comparison of the models on a public dataset, through the pipeline's own tasks:
``recs experiment movielens|amazon``.

The dataset is landed as raw days and every day is validated; the embed task runs on the
validation split's first day and on the cut-off (the interest memory needs a state there); then
the evaluate task of the last day fits every model on what was known at the cut-off and scores
it on the held-out days after it.

- MovieLens 100K: the last 14 days are held out, the 7 before them fit the fusion weights.
- Amazon Industrial & Scientific: days come from each user's order (the last interaction on the
  last day); the last day (each user's last item) is held out, the day before fits the fusion,
  and a seeded 10 % of the items never appear before the held-out day (cold items).
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from jobs.rawdata import write_days
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, replace

log = get_logger("experiment")

AMAZON_END = date(2026, 10, 31)
AMAZON_COLD_SHARE = 0.10
RANKING = ("recall", "precision", "ndcg", "map", "hit_rate")


def _settings(base: Settings, root: Path, holdout: int, validation: int) -> Settings:
    return replace(
        base, raw_root=str(root / "raw"), lake_root=str(root / "lake"),
        warehouse=f"duckdb:///{root / 'warehouse.duckdb'}",
        # Public datasets swing far more than a production stream: take every day as it is.
        validate=replace(base.validate, accept_anomalies=True),
        features=replace(base.features, history_days=400),
        eval=replace(base.eval, holdout_days=holdout),
        hybrid=replace(base.hybrid, validation_days=validation),
    )


def land_and_validate(settings: Settings, days, label: str) -> list[date]:
    write_days(settings.raw_root, days, "parquet")
    ctx = RunContext(settings, date.max, "-")
    landed = ctx.raw.days(cat.RAW_EVENTS)
    done = set(ctx.lake.days(cat.CLEAN_EVENTS))
    started = time.perf_counter()
    for ds in landed:
        if ds not in done:
            run_task("validate", RunContext(settings, ds, f"{label}__{ds}"))
    log.info("%d days validated in %.0f s", len(landed), time.perf_counter() - started)
    return landed


def evaluate_last_day(settings: Settings, last: date, label: str) -> pl.DataFrame:
    cutoff = last - timedelta(days=settings.eval.holdout_days)
    for day in (cutoff - timedelta(days=settings.hybrid.validation_days), cutoff):
        for task in ("aggregate", "embed"):
            run_task(task, RunContext(settings, day, f"{label}__{day}"))
    ctx = RunContext(settings, last, f"{label}__{last}")
    run_task("evaluate", ctx)
    return ctx.lake.read(cat.METRICS, ds=last)


def side_by_side(metrics: pl.DataFrame) -> pl.DataFrame:
    """One row per metric@k, one column per model."""
    order = {m: i for i, m in enumerate(RANKING + ("coverage", "novelty", "cold_recall",
                                                   "warm_recall"))}
    return (
        metrics.with_columns(pl.format("{}@{}", "metric", "k").alias("metric@k"),
                             pl.col("metric").replace_strict(order, default=99).alias("_o"))
        .pivot(on="model", index=["metric@k", "_o", "k"], values="value")
        .sort("_o", "k").drop("_o", "k")
    )


def run_experiment(dataset: str, workdir: Path, base: Settings, folder: Path,
                   holdout: int | None = None, validation: int | None = None) -> pl.DataFrame:
    """The side-by-side table; ``holdout`` / ``validation`` days override the dataset's split."""
    if dataset == "movielens":
        from pipelines.datasets.movielens import load_movielens, to_raw_days

        settings = _settings(base, workdir, holdout=holdout or 14, validation=validation or 7)
        days = land_and_validate(settings, to_raw_days(load_movielens(folder)), "ml")
    else:
        from pipelines.datasets.amazon import (
            cold_items,
            cold_summary,
            load_amazon_interactions,
            load_amazon_items,
            to_raw_days,
        )

        settings = _settings(base, workdir, holdout=holdout or 1, validation=validation or 1)
        cold = cold_items(load_amazon_items(folder)["item_id"], AMAZON_COLD_SHARE, seed=0)
        summary = cold_summary(load_amazon_interactions(folder), AMAZON_END, cold, AMAZON_END)
        log.info("cold items: %s", summary)
        days = land_and_validate(
            settings, to_raw_days(folder, AMAZON_END, cold, cold_from=AMAZON_END), "amazon")
    return side_by_side(evaluate_last_day(settings, days[-1], dataset))
