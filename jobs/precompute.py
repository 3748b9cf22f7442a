"""The precompute task: every active user's top-N from the day's hybrid, in user shards.

Users are split into ``serve.shards`` shards by a stable hash of their id. Each shard is scored
on its own (``recs task precompute --shard i``, an Airflow mapped task, or a Dask worker when
the whole task runs with several shards) and writes
``staging/ds=D/shards=N/part-i.parquet`` with its summary; shard 0 also writes the popular
list. Publish runs once, after all shards, and refuses to go on unless every shard of the
configured ``N`` is there and was scored with the day's model.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np
import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from jobs.preconditions import UpstreamMissing, require
from pipelines.core.failpoints import failpoint

log = get_logger("tasks")

POPULAR_NOW = 20  # items of the day's popular list whose rows may read "popular now"


def shard_of(user_ids: pl.Series, shards: int) -> np.ndarray:
    """The shard of each user: crc32 of the id, so every worker and every release agrees."""
    return np.fromiter((zlib.crc32(u.encode()) % shards for u in user_ids), dtype=np.int64,
                       count=user_ids.len())


def shard_parts(ctx: RunContext, shard: int) -> tuple[str, ...]:
    n = ctx.settings.serve.shards
    return ("staging", ctx.part, f"shards={n}", f"part-{shard}.parquet")


def shard_task_name(shard: int, shards: int) -> str:
    return f"precompute-{shard}-of-{shards}"


def precompute(ctx: RunContext) -> dict:
    """All shards: in this process with one shard, else on Dask workers, one task per shard."""
    started = time.perf_counter()
    n = ctx.settings.serve.shards
    if n == 1:
        summaries = [precompute_shard(ctx, 0)]
    else:
        from pipelines.core.engines import dask_client

        with dask_client(ctx.settings.dask) as client:
            futures = [client.submit(_remote_shard, ctx.settings, ctx.ds, ctx.run_id, i,
                                     pure=False) for i in range(n)]
            summaries = client.gather(futures)
    return ctx.summary("precompute", **shard_totals(summaries),
                       seconds=time.perf_counter() - started)


def shard_totals(summaries: list[dict]) -> dict:
    """The precompute volumes of a run from its shards' summaries."""
    return {"model_version": summaries[0]["model_version"], "shards": len(summaries),
            **{key: sum(s[key] for s in summaries)
               for key in ("active_users", "users", "rows", "cold_item_rows")}}


def shard_summaries(ctx: RunContext) -> list[dict]:
    """The summaries of the configured shards that have one (mapped tasks write no
    ``precompute.json`` of the whole)."""
    n = ctx.settings.serve.shards
    names = [("runs", ctx.part, f"{shard_task_name(i, n)}.json") for i in range(n)]
    return [ctx.lake.read_json(*parts) for parts in names if ctx.lake.exists(*parts)]


def _remote_shard(settings, ds, run_id, shard: int) -> dict:
    return precompute_shard(RunContext(settings, ds, run_id), shard)


def precompute_shard(ctx: RunContext, shard: int) -> dict:
    """Top-N with a reason per row for the active users of one shard, into staging."""
    from pipelines.model.registry import load_hybrid
    from pipelines.serve.lists import Rerank, als_lists, popularity_ranking, seen_pairs
    from pipelines.serve.reasons import explain

    started = time.perf_counter()
    serve, n_shards = ctx.settings.serve, ctx.settings.serve.shards
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range: serve.shards is {n_shards}")
    require(ctx, ("runs", ctx.part, "train.json"), "train")
    version = ctx.lake.read_json("runs", ctx.part, "train.json")["model_version"]
    hybrid = load_hybrid(ctx.lake, version)
    interactions = ctx.lake.read_parquet("features", ctx.part, "interactions.parquet")
    user_feats = ctx.lake.read_parquet("features", ctx.part, "users.parquet")
    active = user_feats.filter(
        pl.col("days_since_last") <= ctx.settings.features.active_days)["user_id"]
    active = active.filter(shard_of(active, n_shards) == shard)
    catalog = ctx.catalog()
    available = catalog.filter(pl.col("available"))["item_id"]
    seen = seen_pairs(interactions, serve)
    item_vecs = ctx.lake.read_parquet("embeddings", "items", ctx.part, "part-0.parquet")
    model_items = hybrid.base.item_ids
    rerank = Rerank.from_settings(serve, model_items, item_vecs, catalog)
    lists = als_lists(hybrid.augmented(), hybrid.base.user_ids, model_items, active,
                      serve.top_n, seen, available, memory_mb=serve.memory_mb,
                      device=_scoring_device(ctx), rerank=rerank)
    cold = model_items.filter(hybrid.base.cold)
    item_pop = ctx.lake.read_parquet("features", ctx.part, "items.parquet")
    popular = popularity_ranking(item_pop, available, serve.top_n)
    lists = explain(lists, interactions, item_vecs, catalog, cold=cold,
                    popular=popular["item_id"].head(POPULAR_NOW))
    ctx.lake.write_parquet(lists, *shard_parts(ctx, shard))
    failpoint("precompute:writing")
    if shard == 0:
        ctx.lake.write_parquet(popular, "staging", ctx.part, "popular.parquet")
    cold_rows = lists.filter(pl.col("item_id").is_in(cold.implode())).height
    log.info("shard %d/%d: %d lists (%d rows, %d of cold items) for %d active users",
             shard, n_shards, lists["user_id"].n_unique(), lists.height, cold_rows, active.len())
    return ctx.summary(shard_task_name(shard, n_shards), model_version=version, shard=shard,
                       shards=n_shards, active_users=active.len(),
                       users=lists["user_id"].n_unique(), rows=lists.height,
                       cold_item_rows=cold_rows, seconds=time.perf_counter() - started)


def _scoring_device(ctx: RunContext) -> str:
    """The GPU when the run has one (``auto``) or asks for it, without importing torch
    when the run is told to stay on the CPU."""
    if ctx.settings.device == "cpu":
        return "cpu"
    from pipelines.core.devices import pick_device

    return pick_device(ctx.settings.device)


@dataclass(frozen=True)
class Staged:
    model_version: str
    recommendations: pl.DataFrame
    popular: pl.DataFrame
    active_users: int


def collect_staged(ctx: RunContext) -> Staged:
    """Every shard's lists for ``ds``, checked to be complete and from the day's model."""
    n = ctx.settings.serve.shards
    require(ctx, ("runs", ctx.part, "train.json"), "train")
    version = ctx.lake.read_json("runs", ctx.part, "train.json")["model_version"]
    missing, stale, frames, active = [], [], [], 0
    for i in range(n):
        summary_parts = ("runs", ctx.part, f"{shard_task_name(i, n)}.json")
        if not (ctx.lake.exists(*summary_parts) and ctx.lake.exists(*shard_parts(ctx, i))):
            missing.append(i)
            continue
        summary = ctx.lake.read_json(*summary_parts)
        if summary["model_version"] != version:
            stale.append(f"{i} ({summary['model_version']})")
            continue
        frames.append(ctx.lake.read_parquet(*shard_parts(ctx, i)))
        active += int(summary["active_users"])
    if missing or stale:
        raise UpstreamMissing(
            f"precompute for {ctx.ds} is not complete for model {version} with {n} shard(s): "
            + "; ".join(filter(None, [
                missing and f"missing shard(s) {', '.join(map(str, missing))}",
                stale and f"shard(s) scored with another model: {', '.join(stale)}"]))
            + ": run the precompute task (or its missing shards) again")
    require(ctx, ("staging", ctx.part, "popular.parquet"), "precompute")
    return Staged(version, pl.concat(frames), ctx.lake.read_parquet(
        "staging", ctx.part, "popular.parquet"), active)
