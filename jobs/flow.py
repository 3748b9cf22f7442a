"""The nightly flow without a scheduler: the tasks in order for one ``ds``."""

from __future__ import annotations

from jobs.context import RunContext
from jobs.logs import get_logger
from jobs.tasks import TASKS, record_failure, run_task

log = get_logger("flow")


def run_flow(ctx: RunContext) -> dict[str, dict]:
    """Run every task; on failure record it in ``recs.pipeline_runs`` and re-raise."""
    summaries: dict[str, dict] = {}
    for name in TASKS:
        try:
            summaries[name] = run_task(name, ctx)
        except Exception as exc:
            log.error("%s failed for %s: %s", name, ctx.ds, exc)
            record_failure(ctx, name, exc)
            raise
    return summaries
