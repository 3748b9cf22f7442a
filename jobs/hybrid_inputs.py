"""The hybrid's inputs as of any day, read from the lake; and the configured ALS trainer.

Whatever is read for day ``X`` was knowable at the end of ``X``: features merged from the daily
summaries up to ``X``, the catalog as of ``X``, and the embeddings and interest memory of the
latest partition ``<= X``. So the evaluation's cut-off and the fusion's validation split see the
past exactly as a nightly run on that day would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta

import polars as pl

from jobs.context import RunContext
from jobs.features import ensure_daily, merged
from jobs.logs import get_logger
from pipelines.core.engines import Engine
from pipelines.core.settings import Settings
from pipelines.core.storage import partition
from pipelines.evaluate.holdout import holdout_truth
from pipelines.model.hybrid import AsOf, Trainer

log = get_logger("hybrid")


def _latest(ctx: RunContext, day: date, *parts: str) -> date | None:
    days = [d for d in ctx.lake.partitions(*parts) if d <= day]
    return days[-1] if days else None


def features_as_of(ctx: RunContext, engine: Engine, day: date) -> dict[str, pl.DataFrame]:
    """The features of ``day``: as the aggregate task wrote them, else merged now."""
    names = ("interactions", "users", "items")
    if all(ctx.lake.exists("features", partition(day), f"{n}.parquet") for n in names):
        return {n: ctx.lake.read_parquet("features", partition(day), f"{n}.parquet")
                for n in names}
    day_ctx = replace(ctx, ds=day)
    days = day_ctx.window("clean", "events", days=ctx.settings.features.history_days)
    ensure_daily(ctx, engine, days)
    return merged(ctx, engine, day, days, day_ctx.catalog())


def as_of(ctx: RunContext, engine: Engine, day: date) -> AsOf:
    feats = features_as_of(ctx, engine, day)
    catalog = replace(ctx, ds=day).catalog()["item_id"]
    item_day = _latest(ctx, day, "embeddings", "items")
    vectors = pl.DataFrame(schema={"item_id": pl.String, "vector": pl.Array(pl.Float32, 0)})
    model = None
    if item_day is not None:
        stored = ctx.lake.read_parquet("embeddings", "items", partition(item_day),
                                       "part-0.parquet")
        model = stored["model"][0] if stored.height else None
        vectors = (stored.select("item_id", "vector")
                   .filter(pl.col("item_id").is_in(catalog.implode())))
    interest_day = _latest(ctx, day, "embeddings", "interest")
    interest = None
    if interest_day is not None:
        stored = ctx.lake.read_parquet("embeddings", "interest", partition(interest_day),
                                       "part-0.parquet")
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
    test_days = [d for d in ctx.lake.partitions("clean", "events") if start < d <= day]
    events = ctx.read_partitions("clean/events", test_days)
    if events is None:
        return train, pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String})
    return train, holdout_truth(events, train.interactions, recommendable(train), ctx.settings)


def validation(ctx: RunContext, engine: Engine, day: date) -> tuple[AsOf, pl.DataFrame] | None:
    """The fusion's validation split for a model as of ``day``, or None with nothing in it."""
    days = ctx.lake.partitions("clean", "events")
    start = day - timedelta(days=ctx.settings.hybrid.validation_days)
    if not days or start < days[0]:
        log.warning("no history before %s for a validation split: fusion ranks by ALS", start)
        return None
    train, truth = split(ctx, engine, day, ctx.settings.hybrid.validation_days)
    return (train, truth) if truth.height else None


def als_backend(settings: Settings) -> str:
    """Where ALS runs for these settings on this worker: ``implicit-gpu`` (implicit built with
    CUDA, device not forced to CPU), ``implicit-cpu``, or ``spark_als on <master>``."""
    from pipelines.core.devices import implicit_has_cuda

    if settings.trainer == "spark_als":
        return f"spark_als on {settings.spark.master}"
    return "implicit-gpu" if settings.device != "cpu" and implicit_has_cuda() else "implicit-cpu"


@contextmanager
def open_trainer(ctx: RunContext) -> Iterator[Trainer]:
    """``implicit`` in this process (on the GPU when implicit was built with CUDA and the
    device allows it), or Spark MLlib on the configured Spark (``trainer``)."""
    from pipelines.model.als import fit_als

    cfg = ctx.settings.model
    if ctx.settings.trainer != "spark_als":
        use_gpu = als_backend(ctx.settings) == "implicit-gpu"
        yield lambda data: fit_als(data, cfg, use_gpu=use_gpu)
        return
    from pipelines.core.spark import spark_session
    from pipelines.model.spark_als import fit_spark_als

    with spark_session(ctx.settings.spark, "recs-train") as spark:
        yield lambda data: fit_spark_als(data, cfg, spark)
