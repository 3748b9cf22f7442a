"""aggregate: interaction, user and item features for ``ds`` on the configured engine.

Reads ``clean/events`` of the history window and the catalog; writes the daily summaries it
lacks (``features/daily/{pairs,users,items,meta}/ds=D``, built once per day and rebuilt only
when the settings or the day's validation changed) and ``features/ds=D/*.parquet`` merged from
them.
"""

from __future__ import annotations

import time
from datetime import date

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.engines import Engine
from pipelines.core.failpoints import failpoint
from pipelines.features import daily

log = get_logger("features")

DAILY = {"pairs": cat.DAILY_PAIRS, "users": cat.DAILY_USERS, "items": cat.DAILY_ITEMS}
FEATURES = {"interactions": cat.INTERACTIONS, "users": cat.USER_FEATURES,
            "items": cat.ITEM_FEATURES}


def run(ctx: RunContext) -> dict:
    from pipelines.core.engines import open_engine

    started = time.perf_counter()
    ctx.lake.require(cat.CLEAN_EVENTS, ds=ctx.ds)
    days = ctx.window(cat.CLEAN_EVENTS, days=ctx.settings.features.history_days)
    with open_engine(ctx.settings) as engine:
        built = ensure_daily(ctx, engine, days)
        outputs = merged(ctx, engine, ctx.ds, days, ctx.catalog())
    for name, frame in outputs.items():
        ctx.lake.write(FEATURES[name], frame, ds=ctx.ds)
        failpoint("aggregate:writing")
    log.info("features on %s from %d days (%d summaries built): %s", ctx.settings.engine,
             len(days), built, ", ".join(f"{k}={v.height}" for k, v in outputs.items()))
    return ctx.summary("aggregate", seconds=time.perf_counter() - started,
                       engine=ctx.settings.engine, days=len(days), daily_built=built,
                       rows_out={k: v.height for k, v in outputs.items()})


def _meta(ctx: RunContext, day: date) -> dict:
    validated = (ctx.lake.read(cat.VALIDATE_SUMMARY, ds=day).finished_at
                 if ctx.lake.exists(cat.VALIDATE_SUMMARY, ds=day) else None)
    return {"settings": daily.settings_digest(ctx.settings), "validated_at": validated}


def ensure_daily(ctx: RunContext, engine: Engine, days: list[date]) -> int:
    """Build the missing or outdated daily summaries of ``days`` in one pass on the engine;
    returns how many days were built."""
    metas = {day: _meta(ctx, day) for day in days}
    todo = [day for day in days
            if not (ctx.lake.exists(cat.DAILY_META, ds=day)
                    and ctx.lake.read_dict(cat.DAILY_META, ds=day) == metas[day])]
    if not todo:
        return 0
    summaries = daily.summarise_days(
        engine, {day: ctx.lake.url(cat.CLEAN_EVENTS, ds=day) for day in todo}, ctx.settings)
    for kind, by_day in summaries.items():
        for day, frame in by_day.items():
            ctx.lake.write(DAILY[kind], frame, quiet=True, ds=day)
    for day in todo:
        ctx.lake.write(cat.DAILY_META, metas[day], quiet=True, ds=day)
    log.info("daily summaries built for %d day(s): %s .. %s", len(todo), todo[0], todo[-1])
    return len(todo)


def merged(ctx: RunContext, engine: Engine, as_of: date, days: list[date],
           catalog: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Interactions, users and items as of the end of ``as_of`` from the summaries of ``days``."""
    return daily.merge(engine, lambda kind, d: ctx.lake.url(DAILY[kind], ds=d), as_of, days,
                       catalog, ctx.settings.features.half_life_days)


def features_for(ctx: RunContext, engine: Engine, day: date) -> dict[str, pl.DataFrame]:
    """The features of ``day``: as the aggregate task wrote them, else merged now (building
    the daily summaries that are missing)."""
    if all(ctx.lake.exists(d, ds=day) for d in FEATURES.values()):
        return {name: ctx.lake.read(d, ds=day) for name, d in FEATURES.items()}
    at = ctx.at(day)
    days = at.window(cat.CLEAN_EVENTS, days=ctx.settings.features.history_days)
    ensure_daily(ctx, engine, days)
    return merged(ctx, engine, day, days, at.catalog())
