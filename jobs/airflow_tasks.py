"""The bridge between Airflow task bodies and the tasks in ``jobs/tasks/``.

DAG files call these with the task's context; settings come from the worker's ``RECS_*``
environment plus the run's params, parsed here once per task.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

PARAM_OVERRIDES = {
    "engine": "engine",
    "device": "device",
    "trainer": "trainer",
    "top_n": "serve.top_n",
    "shards": "serve.shards",
    "accept_anomalies": "validate.accept_anomalies",
    "force_publish": "gate.force_publish",
    "finetune": "finetune.force",
}


# The first day the DAG runs for: Airflow's own start date stays at the epoch, so that a run of
# an earlier day reaches wait_for_raw and fails there instead of succeeding with no task run.
START_DATE_ENV, DEFAULT_START_DATE = "RECS_START_DATE", "1995-01-01"
# The last day, when the logs end (a history replayed, a local sandbox): the DAG's end date, so
# the scheduler creates no run after it, and a run asked for a later day fails like an early one.
END_DATE_ENV = "RECS_END_DATE"


def _env_date(name: str, default: str = "") -> date | None:
    text = os.environ.get(name) or default
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name}={text!r}: not a date (YYYY-MM-DD)") from exc


def start_date() -> date:
    first = _env_date(START_DATE_ENV, DEFAULT_START_DATE)
    assert first is not None
    return first


def end_date() -> date | None:
    return _env_date(END_DATE_ENV)


def outside_run_dates(ds: date) -> str | None:
    """Why a run of ``ds`` may not go ahead (before the first day, after the last), or None
    when it may."""
    first, last = start_date(), end_date()
    if ds < first:
        return (f"ds {ds} is before {START_DATE_ENV} ({first}), the first day this DAG runs "
                f"for: set {START_DATE_ENV} in the workers' environment to run or backfill it")
    if last is not None and ds > last:
        return (f"ds {ds} is after {END_DATE_ENV} ({last}), the last day this DAG runs for: "
                f"unset or move {END_DATE_ENV} in the workers' environment to run it")
    return None


def check_run_dates(context: Mapping[str, Any]) -> None:
    """Fail the run, without retries, when its day is before ``RECS_START_DATE`` or after
    ``RECS_END_DATE``."""
    from airflow.sdk.exceptions import AirflowFailException

    if why := outside_run_dates(date.fromisoformat(context["ds"])):
        raise AirflowFailException(why)


def _context(context: Mapping[str, Any]):
    from jobs.context import RunContext
    from jobs.logs import setup_logging
    from pipelines.core.settings import load_settings

    setup_logging(stream=sys.stdout)
    params = context.get("params") or {}
    # None (and a false boolean flag) means "not set for this run".
    overrides = {key: params.get(name) or None for name, key in PARAM_OVERRIDES.items()}
    settings = load_settings(overrides=overrides)
    return RunContext(settings, date.fromisoformat(context["ds"]), context["run_id"])


def shard_numbers(context: Mapping[str, Any]) -> list[int]:
    """The precompute shards of this run (``serve.shards``, or the run's ``shards`` param)."""
    return list(range(_context(context).settings.serve.shards))


def run(task: str, context: Mapping[str, Any], shard: int | None = None) -> dict:
    """Run ``jobs/tasks/<task>.py``. A pipeline error that is not retryable (bad data, a
    refused model, a missing upstream output, a bad setting) fails without retries, since a
    retry would meet the same input; anything else goes to Airflow's retries."""
    from jobs.tasks import run_task
    from pipelines.core.errors import RecsError

    try:
        return run_task(task, _context(context), shard=shard)
    except RecsError as exc:
        failure = for_airflow(exc)
        if failure is exc:
            raise
        raise failure from exc


def for_airflow(error: BaseException) -> BaseException:
    """What the task raises to Airflow: ``AirflowFailException`` (no retries) for a pipeline
    error that is not retryable, the error itself otherwise."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.core.errors import RecsError

    if isinstance(error, RecsError) and not error.retryable:
        return AirflowFailException(f"{type(error).__name__}: {error}")
    return error


def raw_landed(context: Mapping[str, Any], timeout: timedelta) -> bool:
    """The sensor's poke: has the day's raw events partition landed? An empty partition
    counts (a day without events is a valid delivery); a missing one is waited for."""
    from jobs.logs import get_logger
    from jobs.tasks.validate import raw_partition_landed
    from pipelines.core.catalog import RAW_EVENTS

    ctx = _context(context)
    url = ctx.raw.url(RAW_EVENTS, ds=ctx.ds)
    if raw_partition_landed(ctx):
        get_logger("sensor").info("%s has landed", url)
        return True
    get_logger("sensor").info("waiting for %s: not there yet; the run fails if it has not "
                              "landed %s after the first check", url, timeout)
    return False


def publish_asset(context: Mapping[str, Any], asset: Any) -> dict:
    """Publish, then tell the asset's consumers which ``ds`` and model they now read, and the
    operators (``jobs.alerts``) when the gate refused the candidate."""
    from jobs import alerts

    summary = run("publish", context)
    alerts.published(context["run_id"], date.fromisoformat(context["ds"]), summary["gate"])
    context["outlet_events"][asset].extra = {
        "ds": context["ds"], "run_id": context["run_id"], "rows": summary.get("rows"),
        "model_version": summary.get("model_version"),
        "warehouse": summary.get("warehouse")}
    return summary


def on_failure(context: Mapping[str, Any]) -> None:
    """Failure callback: record the failed run and its message in ``recs.pipeline_runs``, and
    tell the operators (``jobs.alerts``)."""
    from jobs import alerts
    from jobs.tasks import record_failure

    ti = context.get("task_instance")
    task_id = getattr(ti, "task_id", "unknown")
    error = context.get("exception") or RuntimeError("task failed")
    ctx = _context(context)
    if task_id == "wait_for_raw" and (why := outside_run_dates(ctx.ds)):
        error = ValueError(why)
    elif task_id == "wait_for_raw":
        from pipelines.core.catalog import RAW_EVENTS

        error = TimeoutError(f"{ctx.raw.url(RAW_EVENTS, ds=ctx.ds)} did not land in time "
                             f"({type(error).__name__}: {error})")
    try:
        record_failure(ctx, task_id, error)
    finally:  # an unreachable warehouse is one more reason to tell someone
        alerts.send(alerts.failed_task(ctx.run_id, ctx.ds, task_id,
                                       f"{type(error).__name__}: {error}"))


async def publish_late(context: Mapping[str, Any], hours: float = 0.0, **_: Any) -> None:
    """Deadline callback (runs in the triggerer): the run was not done ``hours`` after it
    was queued. Marks it ``late`` in ``recs.pipeline_runs`` unless it has an outcome."""
    await asyncio.to_thread(_record_late, context, hours)


def _record_late(context: Mapping[str, Any], hours: float) -> None:
    from jobs import alerts
    from jobs.context import RunContext
    from jobs.logs import get_logger, setup_logging
    from pipelines.core.settings import load_settings

    setup_logging(stream=sys.stdout)
    run = context["dag_run"]
    # ds is the data interval's start; a run without one is keyed by its logical date.
    start = run.get("data_interval_start") or run["logical_date"]
    ds = datetime.fromisoformat(start).astimezone(UTC).date()
    deadline = context.get("deadline", {}).get("deadline_time")
    message = (f"not published by its deadline {deadline} ({hours:g} h after it was queued)"
               if deadline else f"not published {hours:g} h after it was queued")
    ctx = RunContext(load_settings(), ds, run["dag_run_id"])
    try:
        ctx.warehouse().record_late(ctx.run_id, ctx.ds, message)
    finally:
        alerts.send(alerts.late_run(ctx.run_id, ctx.ds, message))
    get_logger("deadline").warning("run %s for %s: %s", ctx.run_id, ctx.ds, message)
