"""evaluate: every model fitted on what was known at the end of ``ds - holdout_days`` and
scored on the new interactions of the days after, up to ``ds``.

Reads the features, embeddings and clean events of those days (merging features that were
never aggregated); writes ``runs/ds=D/metrics.{parquet,json}`` for publish's quality gate.
"""

from __future__ import annotations

import time
from datetime import timedelta

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.contracts import METRIC_SCHEMA
from pipelines.core.failpoints import failpoint

log = get_logger("tasks")


def run(ctx: RunContext) -> dict:
    from jobs.inputs import recommendable, split, validation
    from pipelines.core.engines import open_engine
    from pipelines.evaluate.holdout import evaluation_lists, score_lists
    from pipelines.model.trainers import open_trainer

    started = time.perf_counter()
    ctx.lake.require(cat.CLEAN_EVENTS, ds=ctx.ds)
    h = ctx.settings.eval.holdout_days
    cutoff = ctx.ds - timedelta(days=h)
    metrics = pl.DataFrame(schema=METRIC_SCHEMA)
    facts: dict = {"cutoff": cutoff.isoformat(), "train_pairs": 0, "test_users": 0,
                   "test_pairs": 0, "cold_test_pairs": 0}
    days = ctx.lake.days(cat.CLEAN_EVENTS)
    if days and days[0] <= cutoff:
        with open_engine(ctx.settings) as engine, open_trainer(ctx.settings) as trainer:
            train_in, truth = split(ctx, engine, ctx.ds, h)
            if truth.height:
                val = validation(ctx, engine, cutoff)
                lists, hybrid = evaluation_lists(train_in, val, truth, ctx.settings, trainer)
                cold = hybrid.base.item_ids.filter(hybrid.base.cold)
                metrics = score_lists(lists, truth, ctx.settings.eval.k, train_in, cold,
                                      recommendable(train_in).len())
                facts["cold_test_pairs"] = truth.filter(
                    pl.col("item_id").is_in(cold.implode())).height
        facts.update(train_pairs=train_in.interactions.height,
                     test_users=truth["user_id"].n_unique(), test_pairs=truth.height)
    if metrics.is_empty():
        log.warning("no held-out interactions of known users and items: nothing to evaluate")
    ctx.lake.write(cat.METRICS, metrics, ds=ctx.ds)
    failpoint("evaluate:writing")
    ctx.lake.write(cat.METRICS_JSON, metrics.to_dicts(), ds=ctx.ds)
    for row in metrics.filter(pl.col("metric").is_in(["recall", "ndcg"])
                              & (pl.col("k") == min(ctx.settings.eval.k))).iter_rows(named=True):
        log.info("%-12s %s@%d = %.4f", row["model"], row["metric"], row["k"], row["value"])
    return ctx.summary("evaluate", seconds=time.perf_counter() - started, **facts)
