"""precompute: the top-N of every user with history in the window, from the model the
evaluation chose, in user shards.

Each shard is scored on its own (``recs task precompute --shard i``, an Airflow mapped task, or
a Dask worker when the whole task runs with several shards). Reads the day's decision, model
version and registry files, features, item vectors and catalog; writes
``staging/ds=D/shards=N/part-i.parquet`` with the shard's summary, and shard 0 the popular list
and every item's similar items (``staging/ds=D/similar_items.parquet``).
"""

from __future__ import annotations

import time

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.failpoints import failpoint
from pipelines.serve.shards import shard_of, shard_task_name, shard_totals

log = get_logger("tasks")


def run(ctx: RunContext) -> dict:
    """All shards: in this process with one shard, else on Dask workers, one task per shard."""
    started = time.perf_counter()
    n = ctx.settings.serve.shards
    if n == 1:
        summaries = [run_shard(ctx, 0)]
    else:
        from pipelines.core.engines import dask_client

        with dask_client(ctx.settings.dask) as client:
            futures = [client.submit(_remote_shard, ctx.settings, ctx.ds, ctx.run_id, i,
                                     pure=False) for i in range(n)]
            summaries = client.gather(futures)
    return ctx.summary("precompute", **shard_totals(summaries),
                       seconds=time.perf_counter() - started)


def _remote_shard(settings, ds, run_id, shard: int) -> dict:
    return run_shard(RunContext(settings, ds, run_id), shard)


def run_shard(ctx: RunContext, shard: int) -> dict:
    """Top-N with a reason per row for the active users of one shard, into staging."""
    from jobs.tasks.train import day_model, load
    from pipelines.serve.lists import seen_pairs
    from pipelines.serve.precompute import shard_lists
    from pipelines.serve.similar import similar_items

    started = time.perf_counter()
    n_shards = ctx.settings.serve.shards
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range: serve.shards is {n_shards}")
    version = day_model(ctx)
    ctx.lake.require(cat.DECISION, ds=ctx.ds)
    decision = ctx.lake.read(cat.DECISION, ds=ctx.ds)
    model = load(ctx, version)
    # Every user with history in the window gets a list of their own.
    active = ctx.lake.read(cat.USER_FEATURES, ds=ctx.ds)["user_id"]
    active = active.filter(shard_of(active, n_shards) == shard)
    interactions = ctx.lake.read(cat.INTERACTIONS, ds=ctx.ds)
    out = shard_lists(model, decision.published, decision.popular, active,
                      seen_pairs(interactions, ctx.settings.serve),
                      ctx.lake.read(cat.ITEM_VECTORS, ds=ctx.ds), interactions, ctx.catalog(),
                      ctx.settings.serve, ctx.settings.retrieval, _scoring_device(ctx))
    ctx.lake.write(cat.STAGED_LISTS, out.lists, ds=ctx.ds, shards=n_shards, shard=shard)
    failpoint("precompute:writing")
    if shard == 0:
        ctx.lake.write(cat.STAGED_POPULAR, out.popular, ds=ctx.ds)
        similar = similar_items(model.retrieval, ctx.catalog(), ctx.settings.serve.similar_items,
                                ctx.settings.serve.memory_mb, _scoring_device(ctx))
        ctx.lake.write(cat.STAGED_SIMILAR, similar.with_columns(
            pl.lit(version).alias("model_version")), ds=ctx.ds)
        log.info("similar items: %d rows for %d items", similar.height,
                 similar["item_id"].n_unique())
    log.info("shard %d/%d: %d lists (%d rows, %d of cold items) for %d active users",
             shard, n_shards, out.lists["user_id"].n_unique(), out.lists.height, out.cold_rows,
             active.len())
    return ctx.summary(shard_task_name(shard, n_shards), dataset=cat.SHARD_SUMMARY,
                       model_version=version, model=decision.published, shard=shard,
                       shards=n_shards,
                       active_users=active.len(), users=out.lists["user_id"].n_unique(),
                       rows=out.lists.height, cold_item_rows=out.cold_rows,
                       seconds=time.perf_counter() - started)


def _scoring_device(ctx: RunContext) -> str:
    """The GPU when the run has one (``auto``) or asks for it, without importing torch
    when the run is told to stay on the CPU."""
    if ctx.settings.device == "cpu":
        return "cpu"
    from pipelines.core.devices import pick_device

    return pick_device(ctx.settings.device)
