"""Recovery of the whole nightly flow from SIGKILL anywhere.

Two nights run task by task, each task in its own process as under Airflow. At each kill
point the task's process is stopped there with SIGKILL (a lost worker, an OOM kill), what
consumers read is checked, and the task is run again, as Airflow's retry would. The final
warehouse must equal the one of ``two_nights``, the same nights run without a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from jobs.context import RunContext, default_run_id
from jobs.tasks import TASKS, run_task
from pipelines.core.settings import Settings, replace
from tests.support.workspace import (
    REFUSED_FINETUNE,
    SMALL_LAST,
    copy_workspace,
    make_settings,
    write_config,
)

pytestmark = pytest.mark.slow

NIGHTS = [SMALL_LAST - timedelta(days=1), SMALL_LAST]
# Inside every task on the first night (the pipeline's own state is written there first);
# between tasks and inside the publish swap on the second, when consumers have a run to lose.
KILLS = {
    NIGHTS[0]: ["validate:quarantined", "aggregate:writing", "finetune:registering",
                "embed:vectors", "train:saving", "evaluate:writing", "precompute:writing",
                "publish:loading"],
    NIGHTS[1]: ["validate:done", "embed:done", "publish:staged", "publish:swap"],
}
# What a consumer or an operator reads; times and report paths differ from run to run.
STATE = {
    "recommendations": "select * from recs.recommendations order by ds, user_id, rank",
    "current": "select * from recs.recommendations_current order by user_id, rank",
    "popular": "select * from recs.popular_items order by ds, rank",
    "items": "select * from recs.items order by ds, item_id",
    "metrics": "select * from recs.model_metrics order by ds, model, metric, k",
    "dq": "select * from recs.dq_results order by ds, dataset, expectation",
    "runs": "select run_id, ds, status, model_version, n_users, n_rows, message "
            "from recs.pipeline_runs order by ds",
}


def _state(settings: Settings) -> dict[str, pl.DataFrame]:
    wh = RunContext(settings, SMALL_LAST, "-").warehouse()
    return {name: wh.query(sql) for name, sql in STATE.items()}


def _current(settings: Settings) -> pl.DataFrame:
    return RunContext(settings, SMALL_LAST, "-").warehouse().query(STATE["current"])


def _kill_inside(settings: Settings, task: str, ds: date, point: str, marker: Path) -> None:
    """Run ``recs task`` with ``settings`` until it reaches ``point``, then SIGKILL it."""
    config = write_config(settings, marker.with_name("recs.toml"))
    env = dict(os.environ, RECS_CONFIG=str(config), RECS_FAILPOINTS=point,
               RECS_FAILPOINT_FILE=str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "task", task, "--ds",
                             ds.isoformat()], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (marker.exists() and marker.read_text() == point):
        if proc.poll() is not None:
            raise AssertionError(f"{task} ended before {point}: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, f"{task} never reached {point}"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    marker.unlink()


def test_sigkill_anywhere_then_rerun_equals_a_clean_run(
        tmp_path: Path, before_two_nights: Path, two_nights: Path) -> None:
    settings = copy_workspace(before_two_nights, tmp_path / "ws")
    marker = tmp_path / "failpoint"
    visible = _current(settings)  # what consumers read before each night: nothing, night 1
    assert visible.is_empty()
    killed = []
    for ds in NIGHTS:
        # The nights of two_nights: the first fine-tunes an encoder that it refuses.
        night = replace(settings, finetune=REFUSED_FINETUNE) if ds == NIGHTS[0] else settings
        ctx = RunContext(night, ds, default_run_id(ds))
        points = list(KILLS[ds])
        for task in TASKS:
            while points and points[0].split(":")[0] == task:
                point = points.pop(0)
                _kill_inside(night, task, ds, point, marker)
                killed.append(point)
                # Consumers still read the last complete run, whole.
                assert _current(settings).equals(visible), f"partial data after {point}"
            run_task(task, ctx)  # the retry
        assert not points, f"kill points never reached: {points}"
        visible = _current(settings)
        assert visible["ds"].unique().to_list() == [ds]

    assert len(killed) == sum(len(p) for p in KILLS.values())
    recovered, clean = _state(settings), _state(make_settings(two_nights))
    for name in STATE:
        assert recovered[name].height > 0, name
        # metric means are float sums in a thread-dependent order: equal to the last bits
        assert_frame_equal(recovered[name], clean[name], check_exact=name != "metrics",
                           abs_tol=1e-12)
