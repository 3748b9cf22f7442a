"""Incremental features: each day's clean events summarised once, and the summaries of a history
window merged into the features of any as-of day.

The engine reads the files it is given (by URL) and collects results as polars; which days need
building and where the summaries live is the aggregate task's business.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, timedelta

import polars as pl

from pipelines.core.contracts import day_start_us
from pipelines.core.engines import Engine, collect, union
from pipelines.core.settings import Settings
from pipelines.features import definitions as fd

KINDS = ("pairs", "users", "items")


def signal(settings: Settings) -> fd.Signal:
    fs, vs = settings.features, settings.validate
    return fd.Signal(weights=dict(fs.event_weights), rating_neutral=fs.rating_neutral,
                     rating_max=vs.rating_max, min_rating_weight=fs.min_rating_weight,
                     half_life_days=fs.half_life_days)


def settings_digest(settings: Settings) -> str:
    """Identifies the settings a daily summary depends on."""
    text = json.dumps(signal(settings).__dict__, sort_keys=True, default=dict)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def end_us(day: date) -> int:
    return day_start_us(day + timedelta(days=1))


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


def summarise_days(engine: Engine, events: dict[date, str],
                   settings: Settings) -> dict[str, dict[date, pl.DataFrame]]:
    """The pair, user and item summaries of each day, from the clean events files of those
    days (``day -> URL``), built in one pass on the engine."""
    sig = signal(settings)
    frames = union([engine.read(url, ts_us=True, **{fd.DAY: end_us(day)})
                    for day, url in events.items()])
    outputs = {
        "pairs": fd.daily_pairs(frames, sig),
        "users": fd.daily_users(frames),
        "items": fd.daily_items(frames, sig),
    }
    out: dict[str, dict[date, pl.DataFrame]] = {}
    for kind, frame in outputs.items():
        collected = normalise(collect(frame))
        out[kind] = {day: collected.filter(pl.col(fd.DAY) == end_us(day)).drop(fd.DAY)
                     for day in events}
    return out


def merge(engine: Engine, summary_url: Callable[[str, date], str], as_of: date,
          days: list[date], catalog: pl.DataFrame, half_life: float) -> dict[str, pl.DataFrame]:
    """Interactions, users and items as of the end of ``as_of`` from the summaries of
    ``days`` (``summary_url(kind, day)`` locates each)."""
    def load(kind: str):
        return union([engine.read(summary_url(kind, d), offset=(as_of - d).days) for d in days])

    pairs = fd.merge_pairs(load("pairs"), half_life)
    interactions = collect(pairs)
    pairs_again = engine.from_polars(interactions.select("user_id", "item_id", "n_events"))
    users = collect(fd.merge_users(load("users"), end_us(as_of)))
    items = collect(fd.merge_items(load("items"), pairs_again, half_life))
    categories = collect(fd.user_categories(
        pairs_again, engine.from_polars(catalog.select("item_id", "category"))))
    return {
        "interactions": fd.finish_interactions(interactions),
        "users": fd.finish_users(users, categories),
        "items": fd.finish_items(items),
    }
