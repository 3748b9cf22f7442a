"""The bridge between Airflow task bodies and the tasks in ``jobs.tasks``.

DAG files call these with the task's context; settings come from the worker's ``RECS_*``
environment plus the run's params, parsed here once per task.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

PARAM_OVERRIDES = {
    "engine": "engine",
    "device": "device",
    "trainer": "trainer",
    "top_n": "serve.top_n",
    "shards": "serve.shards",
    "accept_anomalies": "validate.accept_anomalies",
    "force_publish": "gate.force_publish",
}


def _context(context: Mapping[str, Any]):
    from jobs.context import RunContext
    from jobs.logs import setup_logging
    from pipelines.config import load_settings

    setup_logging()
    params = context.get("params") or {}
    # None (and a false boolean flag) means "not set for this run".
    overrides = {key: params.get(name) or None for name, key in PARAM_OVERRIDES.items()}
    settings = load_settings(overrides=overrides)
    return RunContext(settings, date.fromisoformat(context["ds"]), context["run_id"])


def shard_numbers(context: Mapping[str, Any]) -> list[int]:
    """The precompute shards of this run (``serve.shards``, or the run's ``shards`` param)."""
    return list(range(_context(context).settings.serve.shards))


def run(task: str, context: Mapping[str, Any], shard: int | None = None) -> dict:
    """Run the task; a failure that explains itself (bad data, a refused model, a missing
    upstream output) fails without retries, since a retry would meet the same input."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.tasks import EXPECTED_FAILURES, run_task

    try:
        return run_task(task, _context(context), shard=shard)
    except EXPECTED_FAILURES as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def on_failure(context: Mapping[str, Any]) -> None:
    """Failure callback: record the failed run and its message in ``recs.pipeline_runs``."""
    from jobs.tasks import record_failure

    ti = context.get("task_instance")
    error = context.get("exception") or RuntimeError("task failed")
    record_failure(_context(context), getattr(ti, "task_id", "unknown"), error)
