"""A backfill through the real scheduler: `airflow backfill create` over two days.

The test starts the api-server (the task execution API), the scheduler and the dag-processor
on 127.0.0.1 with SQLite metadata, backfills the two nights that ``two_nights`` ran with
``recs run``, and checks that the warehouse holds the same recommendations, that the days
ran oldest first, and that the task logs carry the run's context and link its report.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobs.context import RunContext
from pipelines.core import catalog as cat
from tests.support.workspace import SMALL_LAST, copy_workspace, write_config

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAYS = [SMALL_LAST - timedelta(days=1), SMALL_LAST]
COLUMNS = "ds, user_id, rank, item_id, score, reason, model_version"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Airflow:
    """The Airflow CLI and services of one throwaway AIRFLOW_HOME."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.services: list[subprocess.Popen] = []

    def cli(self, *args: str, timeout: int = 120) -> str:
        out = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        assert out.returncode == 0, f"airflow {' '.join(args)}:\n{out.stderr[-3000:]}"
        return out.stdout

    def json(self, *args: str) -> list[dict]:
        # the CLI may print warnings before the JSON line, and prints none when nothing matches
        lines = self.cli(*args, "-o", "json").splitlines()
        return next((json.loads(line) for line in reversed(lines) if line.startswith("[")), [])

    def start(self, *command: str) -> None:
        log = (self.home / f"{command[0]}.log").open("w")
        self.services.append(subprocess.Popen([AIRFLOW, *command], env=self.env, stdout=log,
                                              stderr=subprocess.STDOUT,
                                              start_new_session=True))

    def stop(self) -> None:
        for proc in self.services:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.services:
            try:
                proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def wait_for(self, what: str, check, timeout: float, every: float = 5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for proc in self.services:
                assert proc.poll() is None, f"{proc.args[1]} exited: see {self.home}"
            if result := check():
                return result
            time.sleep(every)
        logs = {p.name: p.read_text()[-2000:] for p in self.home.glob("*.log")}
        raise AssertionError(f"timed out waiting for {what}; service logs: {logs}")


@pytest.fixture
def airflow(tmp_path: Path, two_nights: Path) -> Iterator[tuple[Airflow, RunContext]]:
    settings = copy_workspace(two_nights, tmp_path / "ws")
    home = tmp_path / "airflow"
    home.mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # The workers read the settings the clean runs had (make_settings), not the defaults.
        "RECS_CONFIG": str(write_config(settings, tmp_path / "recs.toml")),
        "RECS_RAW_ROOT": settings.raw_root,
        "RECS_LAKE_ROOT": settings.lake_root,
        "RECS_WAREHOUSE": settings.warehouse,
        "RECS_DEVICE": "cpu",
    }
    af = Airflow(home, env)
    af.cli("db", "migrate", timeout=300)
    af.cli("pools", "set", "gpu", "1", "one slot per GPU")
    try:
        af.start("api-server")
        af.start("scheduler", "--skip-serve-logs")
        af.start("dag-processor")
        yield af, RunContext(settings, SMALL_LAST, "-")
    finally:
        af.stop()


def _published(ctx: RunContext) -> list[tuple]:
    return ctx.warehouse().query(
        f"select {COLUMNS} from recs.recommendations order by ds, user_id, rank").rows()


def test_backfill_through_the_scheduler(airflow, two_nights: Path) -> None:
    af, ctx = airflow
    clean = _published(RunContext(copy_workspace(two_nights, af.home.parent / "clean"),
                                  SMALL_LAST, "-"))
    af.wait_for("the DAG to be parsed",
                lambda: any(d["dag_id"] == "recs_nightly" for d in af.json("dags", "list")),
                timeout=180)

    # New DAGs start paused, and a paused DAG leaves backfill runs queued.
    af.cli("backfill", "create", "--dag-id", "recs_nightly", "--from-date",
           DAYS[0].isoformat(), "--to-date", DAYS[-1].isoformat(),
           "--reprocess-behavior", "completed")

    def runs() -> dict[str, dict]:
        return {r["logical_date"][:10]: r for r in af.json("dags", "list-runs", "recs_nightly")
                if r["run_id"].startswith("backfill__")}

    time.sleep(10)  # a few scheduler loops
    assert {day: r["state"] for day, r in runs().items()} == {
        d.isoformat(): "queued" for d in DAYS}

    af.cli("dags", "unpause", "recs_nightly")
    done = af.wait_for(
        "the backfill runs to finish",
        lambda: (r if len(r := runs()) == len(DAYS)
                 and all(x["state"] in ("success", "failed") for x in r.values()) else None),
        timeout=600, every=10)
    assert {day: r["state"] for day, r in done.items()} == {
        d.isoformat(): "success" for d in DAYS}, f"see {af.home}"

    # The same recommendations as the clean `recs run` of the same two days.
    assert _published(ctx) == clean
    wh = ctx.warehouse()
    assert wh.query("select distinct ds from recs.recommendations_current")["ds"].to_list() == [
        DAYS[-1]]
    recorded = wh.query("select run_id, status from recs.pipeline_runs "
                        "where run_id like 'backfill__%' order by ds").rows()
    assert recorded == [(done[d.isoformat()]["run_id"], "success") for d in DAYS]

    # depends_on_past: the day-to-day tasks of the second day started after the first's ended.
    states = {d: {t["task_id"]: t for t in af.json("tasks", "states-for-dag-run",
                                                  "recs_nightly", done[d.isoformat()]["run_id"])}
              for d in DAYS}
    for task in ("validate", "embed", "publish"):
        assert states[DAYS[1]][task]["start_date"] >= states[DAYS[0]][task]["end_date"], task

    # The publish task's log carries the run's context and links the report and summary.
    run_id = done[DAYS[-1].isoformat()]["run_id"]
    log = next((af.home / "logs" / "dag_id=recs_nightly" / f"run_id={run_id}"
                / "task_id=publish").glob("attempt=*.log")).read_text()
    assert f"[task=publish ds={DAYS[-1]} run_id={run_id}]" in log
    assert f"run report: {ctx.lake.url(cat.REPORT, ds=ctx.ds)}" in log
    assert f"summary: {ctx.lake.url(cat.PUBLISH_SUMMARY, ds=ctx.ds)}" in log
