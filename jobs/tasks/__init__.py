"""The nightly tasks, one module each, named as the DAG's tasks are: ``jobs/tasks/<task>.py``.

Each task reads partitions ``<= ds`` through the lake catalog, calls its stage in
``pipelines/<stage>/``, writes what belongs to ``ds`` (or to a new model version) and leaves a
summary under ``lake/runs/ds=D/<task>.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from jobs import console
from jobs.context import RunContext
from jobs.logs import get_logger, log_context
from jobs.tasks import (
    aggregate,
    embed,
    evaluate,
    finetune,
    precompute,
    publish,
    train,
    validate,
)
from pipelines.core import catalog as cat
from pipelines.core.failpoints import failpoint

log = get_logger("tasks")

TASKS: dict[str, Callable[[RunContext], dict]] = {
    "validate": validate.run,
    "aggregate": aggregate.run,
    "finetune": finetune.run,
    "embed": embed.run,
    "train": train.run,
    "evaluate": evaluate.run,
    "precompute": precompute.run,
    "publish": publish.run,
}


def run_task(name: str, ctx: RunContext, shard: int | None = None) -> dict:
    """Run one task; ``shard``: only that user shard of precompute."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
    if shard is not None and name != "precompute":
        raise ValueError(f"--shard is for precompute, not {name}")
    with log_context(task=name if shard is None else f"{name}[{shard}]",
                     ds=ctx.ds.isoformat(), run_id=ctx.run_id):
        log.info("start")
        summary = TASKS[name](ctx) if shard is None else precompute.run_shard(ctx, shard)
        log.info("done in %.1fs", summary.get("seconds", 0.0))
        where = (ctx.lake.url(cat.SUMMARIES[name], ds=ctx.ds) if shard is None else
                 ctx.lake.url(cat.SHARD_SUMMARY, ds=ctx.ds, shards=summary["shards"],
                              shard=shard))
        console.done(name if shard is None else f"{name}[{shard}]", summary, where)
        # The task is done but whoever runs it has not heard so: it will run it again.
        failpoint(f"{name}:done")
        return summary


def record_failure(ctx: RunContext, task: str, error: BaseException) -> None:
    """Mark the run failed in ``recs.pipeline_runs``; published data is left as it was."""
    message = f"{task} failed: {type(error).__name__}: {error}"[:2000]
    ctx.warehouse().record_run(ctx.run_id, ctx.ds, "failed", None, datetime.now(UTC), message)
