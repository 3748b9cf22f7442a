"""The models' inputs as of any day, read from the lake (train, evaluate and tune share them).

Whatever is read for day ``X`` was knowable at the end of ``X``: features merged from the daily
summaries up to ``X``, the catalog as of ``X``, and the embeddings and interest memory of the
latest partition ``<= X``. So the evaluation's cut-off and the fusion's validation split see the
past exactly as a nightly run on that day would have.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from jobs.tasks.aggregate import features_for
from pipelines.core import catalog as cat
from pipelines.core.engines import Engine
from pipelines.evaluate.holdout import holdout_truth
from pipelines.model.hybrid import AsOf

log = get_logger("hybrid")


def _latest(ctx: RunContext, day: date, dataset: cat.Dataset) -> date | None:
    days = [d for d in ctx.lake.days(dataset) if d <= day]
    return days[-1] if days else None


def as_of(ctx: RunContext, engine: Engine, day: date) -> AsOf:
    feats = features_for(ctx, engine, day)
    catalog = ctx.at(day).catalog()["item_id"]
    item_day = _latest(ctx, day, cat.ITEM_VECTORS)
    vectors = pl.DataFrame(schema={"item_id": pl.String, "vector": pl.Array(pl.Float32, 0)})
    model = None
    if item_day is not None:
        stored = ctx.lake.read(cat.ITEM_VECTORS, ds=item_day)
        model = stored["model"][0] if stored.height else None
        vectors = (stored.select("item_id", "vector")
                   .filter(pl.col("item_id").is_in(catalog.implode())))
    interest_day = _latest(ctx, day, cat.INTEREST)
    interest = None
    if interest_day is not None:
        stored = ctx.lake.read(cat.INTEREST, ds=interest_day)
        # Cosines only mean something between vectors of one model at one precision.
        if stored.height and stored["model"][0] == model:
            interest = stored.select("user_id", "vector")
        elif stored.height:
            log.warning("interest memory of %s is from another embedding model than the item "
                        "vectors of %s: not used", interest_day, item_day)
    log.info("inputs as of %s: %d interactions, item vectors of %s, interest memory of %s",
             day, feats["interactions"].height, item_day, interest_day)
    return AsOf(interactions=feats["interactions"], items=feats["items"], users=feats["users"],
                item_vectors=vectors, interest=interest)


def recommendable(asof: AsOf) -> pl.Series:
    """Items a model fitted on ``asof`` could list: interacted ones and embedded catalog ones."""
    return pl.concat([asof.interactions["item_id"], asof.item_vectors["item_id"]]).unique()


def split(ctx: RunContext, engine: Engine, day: date,
          days_after: int) -> tuple[AsOf, pl.DataFrame]:
    """The inputs as of ``day - days_after`` and the new positive pairs of the days after it,
    up to ``day``."""
    start = day - timedelta(days=days_after)
    train = as_of(ctx, engine, start)
    test_days = [d for d in ctx.lake.days(cat.CLEAN_EVENTS) if start < d <= day]
    events = ctx.read_days(cat.CLEAN_EVENTS, test_days)
    if events is None:
        return train, pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String})
    return train, holdout_truth(events, train.interactions, recommendable(train), ctx.settings)


def validation(ctx: RunContext, engine: Engine, day: date) -> tuple[AsOf, pl.DataFrame] | None:
    """The fusion's validation split for a model as of ``day``, or None with nothing in it."""
    days = ctx.lake.days(cat.CLEAN_EVENTS)
    start = day - timedelta(days=ctx.settings.hybrid.validation_days)
    if not days or start < days[0]:
        log.warning("no history before %s for a validation split: fusion ranks by ALS", start)
        return None
    train, truth = split(ctx, engine, day, ctx.settings.hybrid.validation_days)
    return (train, truth) if truth.height else None
