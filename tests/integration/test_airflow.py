"""The DAG through the real Airflow CLI: `airflow dags test` with SQLite metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from jobs.context import RunContext
from tests.support.workspace import SMALL_LAST, copy_workspace

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[2]
DS = SMALL_LAST - timedelta(days=1)  # the first day after the validated history


def test_dags_test_publishes_one_ds(tmp_path: Path, before_two_nights: Path) -> None:
    settings = copy_workspace(before_two_nights, tmp_path / "ws")
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "RECS_RAW_ROOT": settings.raw_root,
        "RECS_LAKE_ROOT": settings.lake_root,
        "RECS_WAREHOUSE": settings.warehouse,
        "RECS_DEVICE": "cpu",
        # the deadline alert breaks `airflow dags test` (apache/airflow#73428); the backfill
        # test runs the DAG with it through the scheduler
        "RECS_PUBLISH_DEADLINE_HOURS": "0",
    }
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)
    result = subprocess.run([airflow, "dags", "test", "recs_nightly", DS.isoformat()], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    wh = RunContext(settings, DS, "-").warehouse()
    current = wh.query("select distinct ds, run_id from recs.recommendations_current")
    assert current["ds"].to_list() == [DS]
    assert current["run_id"][0].startswith("manual__")
    runs = wh.query("select status from recs.pipeline_runs where ds = ?", [DS])
    assert runs["status"].to_list() == ["success"]

    # A day before RECS_START_DATE fails, naming the setting; it never passes with no task run.
    early = DS - timedelta(days=5)
    result = subprocess.run([airflow, "dags", "test", "recs_nightly", early.isoformat()],
                            env={**env, "RECS_START_DATE": DS.isoformat()},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert f"before RECS_START_DATE ({DS})" in result.stdout + result.stderr
    failed = wh.query("select status, message from recs.pipeline_runs where ds = ?", [early])
    assert failed["status"].to_list() == ["failed"]
    assert "RECS_START_DATE" in failed["message"][0]
