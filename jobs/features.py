"""Incremental features: daily summaries written once per day, merged for any as-of day.

``lake/features/daily/{pairs,users,items}/ds=D/part-0.parquet`` hold one day's summaries, with
``meta.json`` saying which settings and which validate run produced them; a summary is rebuilt
only when either changed. ``merged(...)`` combines the summaries of a history window.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.features import definitions as fd
from pipelines.core.contracts import day_start_us
from pipelines.core.engines import Engine, collect, union
from pipelines.core.storage import partition

log = get_logger("features")

def signal(ctx: RunContext) -> fd.Signal:
    fs, vs = ctx.settings.features, ctx.settings.validate
    return fd.Signal(weights=dict(fs.event_weights), rating_neutral=fs.rating_neutral,
                     rating_max=vs.rating_max, min_rating_weight=fs.min_rating_weight,
                     half_life_days=fs.half_life_days)


def _end_us(day: date) -> int:
    return day_start_us(day + timedelta(days=1))


def _meta(ctx: RunContext, day: date) -> dict:
    settings = json.dumps(signal(ctx).__dict__, sort_keys=True, default=dict)
    validated = ctx.lake.read_json("runs", partition(day), "validate.json")["finished_at"] \
        if ctx.lake.exists("runs", partition(day), "validate.json") else None
    return {"settings": hashlib.sha256(settings.encode()).hexdigest()[:16],
            "validated_at": validated}


def normalise(frame: pl.DataFrame) -> pl.DataFrame:
    """One schema whatever engine built a summary: counts and times as Int64, the rest Float64
    (Dask returns nullable integers as floats)."""
    exprs = []
    for name, dtype in frame.schema.items():
        if name.endswith(("_us", "_fp")) or name.startswith("n_"):
            exprs.append(pl.col(name).cast(pl.Int64))
        elif dtype.is_numeric():
            exprs.append(pl.col(name).cast(pl.Float64))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def ensure_daily(ctx: RunContext, engine: Engine, days: list[date]) -> int:
    """Build the missing or outdated daily summaries of ``days`` in one pass on the engine;
    returns how many days were built."""
    sig = signal(ctx)
    metas = {day: _meta(ctx, day) for day in days}
    todo = [
        day for day in days
        if not (ctx.lake.exists("features", "daily", "meta", partition(day), "meta.json")
                and ctx.lake.read_json("features", "daily", "meta", partition(day),
                                       "meta.json") == metas[day])
    ]
    if not todo:
        return 0
    events = union([
        engine.read(ctx.lake.url("clean", "events", partition(day), "part-0.parquet"),
                    ts_us=True, **{fd.DAY: _end_us(day)})
        for day in todo
    ])
    outputs = {
        "pairs": fd.daily_pairs(events, sig),
        "users": fd.daily_users(events),
        "items": fd.daily_items(events, sig),
    }
    for kind, frame in outputs.items():
        collected = normalise(collect(frame))
        for day in todo:
            part = collected.filter(pl.col(fd.DAY) == _end_us(day)).drop(fd.DAY)
            ctx.lake.write_parquet(part, "features", "daily", kind, partition(day),
                                   "part-0.parquet", quiet=True)
    for day in todo:
        ctx.lake.write_json(metas[day], "features", "daily", "meta", partition(day), "meta.json",
                            quiet=True)
    log.info("daily summaries built for %d day(s): %s .. %s", len(todo), todo[0], todo[-1])
    return len(todo)


def merged(ctx: RunContext, engine: Engine, as_of: date, days: list[date],
           catalog: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Interactions, users and items as of the end of ``as_of`` from the summaries of ``days``."""
    half_life = ctx.settings.features.half_life_days

    def load(kind: str):
        return union([
            engine.read(ctx.lake.url("features", "daily", kind, partition(d), "part-0.parquet"),
                        offset=(as_of - d).days)
            for d in days
        ])

    pairs = fd.merge_pairs(load("pairs"), half_life)
    interactions = collect(pairs)
    pairs_again = engine.from_polars(interactions.select("user_id", "item_id", "n_events"))
    users = collect(fd.merge_users(load("users"), _end_us(as_of)))
    items = collect(fd.merge_items(load("items"), pairs_again, half_life))
    categories = collect(fd.user_categories(
        pairs_again, engine.from_polars(catalog.select("item_id", "category"))))
    return {
        "interactions": fd.finish_interactions(interactions),
        "users": fd.finish_users(users, categories),
        "items": fd.finish_items(items),
    }
