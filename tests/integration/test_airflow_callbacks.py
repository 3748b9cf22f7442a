"""What the DAG's sensor, failure callback and deadline callback do, on a real warehouse.

Airflow calls these with its context; here the context holds what Airflow passes (the
deadline callback gets the run as the API's DAGRunResponse JSON).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from jobs.airflow_tasks import on_failure, publish_late, raw_landed
from pipelines.warehouse import open_warehouse

DS = date(2026, 10, 13)
RUN_ID = "scheduled__2026-10-14T00:00:00+00:00"


@pytest.fixture
def env(warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RECS_RAW_ROOT", str(tmp_path / "raw"))
    monkeypatch.setenv("RECS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("RECS_WAREHOUSE", warehouse_url)
    monkeypatch.delenv("RECS_CONFIG", raising=False)
    return warehouse_url


@dataclass
class _TaskInstance:
    task_id: str


def _task_context(task_id: str, error: BaseException) -> dict:
    return {"ds": DS.isoformat(), "run_id": RUN_ID, "params": {},
            "task_instance": _TaskInstance(task_id), "exception": error}


def _deadline_context() -> dict:
    return {"dag_run": {"dag_run_id": RUN_ID, "dag_id": "recs_nightly",
                        "logical_date": "2026-10-13T00:00:00Z",
                        "data_interval_start": "2026-10-13T00:00:00Z",
                        "queued_at": "2026-10-14T00:00:05Z"},
            "deadline": {"id": "d1", "deadline_time": "2026-10-14T08:00:05+00:00"}}


def _runs(url: str) -> list[tuple]:
    return open_warehouse(url).query(
        "select run_id, ds, status, message from recs.pipeline_runs").rows()


def test_a_missed_deadline_marks_the_run_late_and_its_outcome_keeps_that(env: str) -> None:
    asyncio.run(publish_late(_deadline_context(), hours=8.0))
    [(run_id, ds, status, message)] = _runs(env)
    assert (run_id, ds, status) == (RUN_ID, DS, "late")
    assert message == ("not published by its deadline 2026-10-14T08:00:05+00:00 "
                       "(8 h after it was queued)")
    open_warehouse(env).record_run(RUN_ID, DS, "failed", None, datetime.now(UTC),
                                   "train failed: MemoryError")
    [(_, _, status, message)] = _runs(env)
    assert status == "failed"
    assert message.startswith("train failed: MemoryError (was late: not published by")


def test_a_missed_deadline_never_overwrites_an_outcome(env: str) -> None:
    open_warehouse(env).record_run(RUN_ID, DS, "failed", None, datetime.now(UTC),
                                   "validate failed")
    asyncio.run(publish_late(_deadline_context(), hours=8.0))
    assert [r[2:] for r in _runs(env)] == [("failed", "validate failed")]


def test_failure_callback_records_the_task_and_its_message(env: str) -> None:
    on_failure(_task_context("train", ValueError("no interactions in the window")))
    assert [r[2:] for r in _runs(env)] == [
        ("failed", "train failed: ValueError: no interactions in the window")]


def test_sensor_waits_for_the_partition_and_its_timeout_names_it(env: str, tmp_path: Path,
                                                                  caplog) -> None:
    from datetime import timedelta

    context = _task_context("wait_for_raw", RuntimeError())
    assert not raw_landed(context, timedelta(hours=6))
    (tmp_path / "raw" / "events" / f"ds={DS}").mkdir(parents=True)
    assert raw_landed(context, timedelta(hours=6))  # an empty partition is a delivery

    on_failure(_task_context("wait_for_raw", TimeoutError("Sensor has timed out")))
    [(_, _, status, message)] = _runs(env)
    assert status == "failed"
    assert message.startswith(f"wait_for_raw failed: TimeoutError: {tmp_path}/raw/events/"
                              f"ds={DS} did not land in time")
